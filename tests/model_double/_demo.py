"""Demo behaviour for `python -m tests.model_double`: try the service without a Claude account."""

from __future__ import annotations

import re

from ._recorded import RecordedRequest
from ._reply import Reply

# "create file notes.txt", "create a new file called notes.txt"
_CREATE_FILE = re.compile(
    r"\bcreate\s+(?:an?\s+)?(?:new\s+)?file\s+(?:named\s+|called\s+)?[`'\"]?([\w.\-/]+)", re.I
)
# "write hello.txt", "create notes.md": a bare name only counts when it has an extension,
# so "write a poem" stays a chat message.
_WRITE_NAME = re.compile(
    r"\b(?:write|create)\s+(?:an?\s+)?(?:file\s+)?(?:named\s+|called\s+)?[`'\"]?([\w\-/]*\w\.\w+)",
    re.I,
)
_CONTENT = re.compile(
    r"(?:containing|with\s+(?:the\s+)?(?:content|text)|saying)\s*:?\s*[\"'“](.+?)[\"'”]",
    re.I | re.S,
)
_DELAY = 0.03  # slow enough that streaming is visible in a terminal or browser


def _safe_name(raw: str) -> str:
    # Keep the file inside the workspace whatever the user typed.
    parts = [p for p in raw.rstrip(".,;:!?").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def _last_written_path(request: RecordedRequest) -> str:
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tool_input = block.get("input")
                path = tool_input.get("file_path") if isinstance(tool_input, dict) else None
                if isinstance(path, str):
                    return path
    return "the file"


def demo_reply(request: RecordedRequest) -> Reply:
    """Echo the user in a friendly way; write a file when asked to create one."""
    results = request.last_tool_results
    if results:
        if any(r.get("is_error") for r in results):
            return Reply.text(
                "The tool did not run (it was denied or failed), so nothing was written.",
                delay=_DELAY,
            )
        return Reply.text(
            f"Done! I wrote {_last_written_path(request)}. Anything else?", delay=_DELAY
        )

    text = request.last_user_text
    match = _CREATE_FILE.search(text) or _WRITE_NAME.search(text)
    name = _safe_name(match.group(1)) if match else ""
    if name and request.working_directory is not None:
        content_match = _CONTENT.search(text)
        content = (
            content_match.group(1)
            if content_match
            else f"Hello from the model double!\nYou asked: {text}\n"
        )
        return Reply.tool_use(
            "Write",
            {"file_path": "{cwd}/" + name, "content": content},
            text_before=f"Sure, I'll create {name} in your workspace.",
        )

    said = f"You said: “{text}”. " if text else ""
    return Reply.text(
        "Hi! I'm the model double, a stand-in for Claude used in demos and tests, "
        f"so I can't really think. {said}"
        "Try “create file hello.txt” to watch me use a tool.",
        delay=_DELAY,
    )
