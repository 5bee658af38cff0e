"""The core's own types: what a turn, its input, its items, a session and the
live configuration are, apart from any wire format.

The core works on these; `core_service/servicers/convert.py` is the one place
that turns them into `claudecode.v1` messages and back, and the database keeps
their JSON (`codec.py`), so a change to the public proto is not a change to
what is stored.
"""
