"""gRPC metadata names the facade and the admin site send and the core reads."""

from __future__ import annotations

AUTHORIZATION = "authorization"
# The admin site's proof that it is the admin site (AdminService only).
ADMIN_TOKEN_HEADER = "x-ccapi-admin-token"
# The signed-in admin-site user a call is made for; none: the service itself.
ACTOR_HEADER = "x-ccapi-actor"
# The public route template (e.g. /v1/chat/completions) the request log records.
ENDPOINT_HEADER = "x-ccapi-endpoint"
REQUEST_ID_HEADER = "x-request-id"
# The facade's proof that it is the facade (see ccapi_client.service_identity):
# only with it does the core believe the endpoint, the client's address and
# the stream flag a call names, or record a request the facade refused.
FACADE_TOKEN_HEADER = "x-ccapi-facade-token"
# The HTTP client's address, as the facade saw it (the core sees the facade's).
CLIENT_ADDRESS_HEADER = "x-ccapi-client-address"
# Where gRPC carries a google.rpc.Status with its details.
STATUS_DETAILS_HEADER = "grpc-status-details-bin"
# FileService.UploadFile: the core will refuse the upload; stop writing and
# half-close to read its status (see files.proto).
UPLOAD_REFUSED_HEADER = "x-ccapi-upload-refused"
