"""What the core, the HTTP facade and the admin site share about talking gRPC to
each other: metadata names, the gRPC -> HTTP status table, rich statuses, the
lazy channel, the gunicorn bootstrap, enum names and the AdminService client.

It imports neither the facade nor the admin site nor the core, so each of them
can use it without loading the others.
"""
