"""Files a client attaches to a message, as `claudecode.v1.Attachment` parts.

Chat: `{"type": "file", "file": {"file_data" | "file_id", "filename"}}`;
Responses: `{"type": "input_file", "file_data" | "file_id", "filename"}`.
`file_data` is a data URL (`data:<mime>;base64,...`, as the openai SDKs send
it) or bare base64. Exactly one of the two; `filename` is required with
`file_data`. The core checks the name, the size and the file's owner, and
writes the file into the conversation's workspace (core_service/turns/
attachments.py). Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re

from claudecode.v1 import content_pb2
from http_facade.errors import invalid_request, unsupported

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*;base64,(?P<b64>.*)$", re.S
)


def attachment_part(
    *,
    file_data: str | None,
    file_id: str | None,
    filename: str | None,
    param: str,
    file_url: str | None = None,
) -> content_pb2.ContentPart:
    """The part for one attached file; 400 naming the param (``param`` is the
    object holding the fields, e.g. ``messages[0].content[1].file``)."""
    if file_url is not None:
        raise unsupported(f"{param}.file_url", "files are attached by file_data or file_id")
    if (file_data is None) == (file_id is None):
        raise invalid_request(
            "An attached file needs exactly one of 'file_data' and 'file_id'.",
            f"{param}.file_data" if file_data is not None else param,
        )
    if file_id is not None:
        if not file_id:
            raise invalid_request("'file_id' must not be empty.", f"{param}.file_id")
        return content_pb2.ContentPart(
            file=content_pb2.Attachment(file_id=file_id, filename=filename or "")
        )
    assert file_data is not None
    if not filename:
        raise invalid_request(
            "A file sent as 'file_data' needs a 'filename'.",
            f"{param}.filename",
            "missing_required_parameter",
        )
    media_type, data = _decode(file_data, f"{param}.file_data")
    return content_pb2.ContentPart(
        file=content_pb2.Attachment(filename=filename, data=data, media_type=media_type)
    )


def _decode(file_data: str, param: str) -> tuple[str, bytes]:
    media_type, encoded = "", file_data
    if file_data.startswith("data:"):
        m = _DATA_URL.match(file_data)
        if m is None:
            raise invalid_request(
                "'file_data' must be a base64 data URL (data:<mime>;base64,...) or base64.",
                param,
                "invalid_file_data",
            )
        media_type, encoded = m.group("mime") or "", m.group("b64")
    try:
        return media_type, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(
            "'file_data' is not valid base64.", param, "invalid_file_data"
        ) from None
