"""One redaction policy for everything that shows conversations or request
bodies: the core applies it before storing a log body, the admin site to every
conversation it renders, for every role."""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

REDACTED = "[REDACTED]"

# Names whose values are secrets, in JSON, form data, query strings and headers.
_SECRET_NAME = (
    r"[\w.-]*?(?:api[_-]?key|apikey|password|passwd|passphrase|secret|token|"
    r"authorization|credentials?|private[_-]?key|access[_-]?key|session[_-]?key|cookie)"
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, also when cut off before their END line.
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.S,
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    # JSON: "password": "...".
    (
        re.compile(
            r'"(?P<name>' + _SECRET_NAME + r')"(?P<sep>\s*:\s*)"(?:\\.|[^"\\])*"',
            re.I,
        ),
        r'"\g<name>"\g<sep>"' + REDACTED + '"',
    ),
    # JSON inside a JSON string: \"password\": \"...\".
    (
        re.compile(
            r'\\"(?P<name>' + _SECRET_NAME + r')\\"(?P<sep>\s*:\s*)\\".*?\\"',
            re.I,
        ),
        r'\\"\g<name>\\"\g<sep>\\"' + REDACTED + r'\\"',
    ),
    # Authorization: Bearer/Basic/Token <credentials>.
    (
        re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=:-]{4,}", re.I),
        r"\1\2" + REDACTED,
    ),
    # Our keys, OpenAI's and Anthropic's (sk-cc-..., sk-ant-..., sk-proj-..., sk-...).
    (re.compile(r"\b(sk-(?:cc-|ant-|proj-)?)[A-Za-z0-9_-]{6,}"), r"\1" + REDACTED),
    # AWS access key ids.
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), REDACTED),
    # GitHub and Slack tokens.
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), REDACTED),
    # password=..., api_key: ..., X-Api-Key: ... (form data, query strings,
    # headers, env files, YAML). Short or all-digit values (max_token=100)
    # are left alone.
    (
        re.compile(
            r"(?P<name>\b" + _SECRET_NAME + r")(?P<sep>\s*[=:]\s*)"
            r"(?!\[REDACTED|(?:Bearer|Basic|Token)\s|\d+\b)(?=[^\s&,;\"'<>]{6})"
            r"[^\s&,;\"'<>]+",
            re.I,
        ),
        r"\g<name>\g<sep>" + REDACTED,
    ),
]


def redact(text: str) -> str:
    """`text` with secrets (API keys, bearer tokens, passwords, private keys,
    AWS keys) replaced by "[REDACTED]"."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Fields that name things rather than hold what someone wrote; never redacted.
IDENTIFIERS = frozenset(
    {"id", "session_id", "parent_turn_id", "turn_id", "tool_use_id", "model", "name", "path",
     "key_id", "key_name", "request_id", "endpoint", "outcome", "media_type", "url"}
)


def redact_message(message: Message) -> None:
    """Redacts, in place, every text field of ``message`` and of the messages in it
    (a turn's input, instructions, output, tool inputs and outputs, diffs, errors)."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                entry_value = entry.fields_by_name["value"]
                if entry_value.type == FieldDescriptor.TYPE_STRING:
                    for key in list(value):
                        value[key] = redact(value[key])
                elif entry_value.type == FieldDescriptor.TYPE_MESSAGE:
                    for key in list(value):
                        redact_message(value[key])
            elif field.is_repeated:
                for item in value:
                    redact_message(item)
            else:
                redact_message(value)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name not in IDENTIFIERS:
            if field.is_repeated:
                value[:] = [redact(v) for v in value]
            else:
                setattr(message, field.name, redact(value))
