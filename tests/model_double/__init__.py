"""A scripted stand-in for the Anthropic Messages API, for driving the real Claude Code CLI.

    with ModelDouble() as double:
        double.script(Reply.tool_use("Write", {"file_path": "{cwd}/a.txt", "content": "x"}),
                      Reply.text("done"))
        env = double.cli_env(home=tmp_path)   # ANTHROPIC_BASE_URL etc.
        ...run claude...
        assert double.main_requests[0].working_directory == str(workspace)

Run `python -m tests.model_double --port 8787` for the demo model.
"""

from ._recorded import RecordedRequest, SeenToolResult
from ._render import COMPACTION_SUMMARY_PREFIX
from ._reply import Reply, TextBlock, ThinkingBlock, ToolUseBlock
from ._server import DEFAULT_REPLY, ModelDouble

__all__ = [
    "COMPACTION_SUMMARY_PREFIX",
    "DEFAULT_REPLY",
    "ModelDouble",
    "RecordedRequest",
    "Reply",
    "SeenToolResult",
    "TextBlock",
    "ThinkingBlock",
    "ToolUseBlock",
]
