"""gRPC servicers: decode, call the session manager or a store, encode."""
