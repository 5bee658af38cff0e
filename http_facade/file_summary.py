"""The markdown summary of a turn's changed files, appended to chat answers.

Plain chat UIs only show ``content``; the summary lets them show what the agent
wrote. Chat clients resend our answer as history, and the core recognises a
conversation by its exact history, so :func:`remove` takes the block out again
(found by :data:`MARKER`, an HTML comment that markdown renderers hide) before
a request's messages go to the core.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

MARKER = "<!-- claude-code:file-summary -->"
MAX_LINES_PER_FILE = 60
MAX_CHARS = 8000

_LANG = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".jsx": "jsx",
    ".sh": "bash",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".rb": "ruby",
    ".php": "php",
    ".html": "html",
    ".css": "css",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".md": "markdown",
    ".sql": "sql",
    ".kt": "kotlin",
    ".swift": "swift",
    ".cs": "csharp",
}


def remove(text: str) -> str:
    """``text`` without a summary block this facade appended (and the blank lines before it)."""
    at = text.rfind(MARKER)
    if at < 0:
        return text
    return text[:at].rstrip()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _fence(body: str, lang: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{body}\n{ticks}"


def _new_content(diff: str) -> list[str]:
    """The lines of a created file, from its all-additions diff."""
    out: list[str] = []
    for line in diff.splitlines():
        if line.startswith("+++") or line.startswith("---") or line.startswith("@@"):
            continue
        if line.startswith("+"):
            out.append(line[1:])
    return out


def _diff_body(diff: str) -> list[str]:
    return [ln for ln in diff.splitlines() if not (ln.startswith("+++ ") or ln.startswith("--- "))]


def _code(f: Mapping[str, Any]) -> str:
    diff = f.get("diff") or ""
    if f.get("binary") or not diff:
        return ""
    if f.get("kind") == "created":
        lines, lang = _new_content(diff), _LANG.get(PurePosixPath(str(f["path"])).suffix, "")
    else:
        lines, lang = _diff_body(diff), "diff"
    cut = len(lines) > MAX_LINES_PER_FILE
    lines = lines[:MAX_LINES_PER_FILE]
    block = _fence("\n".join(lines), lang)
    if cut or f.get("diff_truncated"):
        block += "\n\n*(cut; the full diff is in `claude_code.files`)*"
    return block


def render(files: Iterable[Mapping[str, Any]]) -> str:
    """The block to append to an answer (empty when nothing changed)."""
    entries: list[str] = []
    total = 0
    items = list(files)
    for i, f in enumerate(items):
        kind = str(f.get("kind") or "changed")
        what = kind if kind == "deleted" else f"{kind}, {_size(int(f.get('size_bytes') or 0))}"
        if f.get("binary") and kind != "deleted":
            what += ", binary"
        entry = f"- `{f['path']}` ({what})"
        code = _code(f)
        if code:
            entry += "\n\n" + code
        if total + len(entry) > MAX_CHARS and entries:
            entries.append(f"- … and {len(items) - i} more (see `claude_code.files`)")
            break
        entries.append(entry)
        total += len(entry)
    if not entries:
        return ""
    count = len(items)
    title = f"**Files changed ({count})**" if count != 1 else "**File changed**"
    return "\n\n" + MARKER + "\n\n---\n" + title + "\n\n" + "\n\n".join(entries) + "\n"
