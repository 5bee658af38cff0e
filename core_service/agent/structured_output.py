"""Structured output: a `claudecode.v1.OutputFormat` as Claude Code's
`output_format`, and a finished turn's structured answer (or the error a
client gets when there is none). Pure functions; the turn pipeline uses
them through `shape_value` (admission: the option is part of the process's
shape) and `TurnTranslator(structured=True)` (the answer).

How a structured turn is reported: the model's own text before (or instead
of) the StructuredOutput call is commentary, not the answer, so it goes out
as reasoning deltas; the answer text is exactly the document, sent as one
text delta once Claude Code's result carries it (it is only known valid
then), and `TurnCompleted.structured_output_json` repeats it.

What the real CLI does (tests/core/test_structured_output_cli.py, CLI bundled
with claude-agent-sdk 0.2.188, against the model double):

- `output_format={"type": "json_schema", "schema": S}` offers the model a
  `StructuredOutput` tool whose input schema is S (beside any other tools;
  with `tools=[]` it is the only real one). Nothing is added to the system
  prompt; the tool's description says to call it exactly once at the end.
  The permission callback is never asked about it.
- The model calls it with a document valid against S: the tool result is
  "Structured output provided successfully", the CLI makes no further model
  call, and the ResultMessage is `subtype="success"`, `structured_output` the
  parsed document and `result` the same document as compact JSON
  (`{"city":"Oslo","temp":3}`).
- The document does not match S: the tool result is an error ("Output does
  not match required schema: /temp: must be integer") and the model tries
  again. After 5 attempts (5 model calls) the CLI gives up: `is_error=True`,
  `subtype="error_max_structured_output_retries"`,
  `terminal_reason="structured_output_retry_exhausted"`, `result=None`,
  `errors=["Failed to provide valid structured output after 5 attempts —
  last StructuredOutput error: ..."]`.
- The model answers in plain text without calling the tool: the CLI sends
  one reminder ("[structured-output-enforce] You MUST call the
  StructuredOutput tool ..."); if the model still answers in text the result
  is `subtype="success"`, `is_error=False`, `structured_output=None` and the
  text in `result`. So "success" alone does not mean a document exists.

The status chosen when there is no valid document: gRPC INTERNAL with reason
`structured_output_failed`, which the facade's table turns into HTTP 502
`server_error` / `structured_output_failed`. Not a 400: the request was
valid (the facade checked the schema). Not a 500: the service did not fail.
The model behind the service (the upstream) did not deliver what the
contract promises even after Claude Code's retries, which is what 502 and
our other model-side failures (`model_error`) say; its own code lets a
client tell it apart and retry, perhaps with a simpler schema. The message
carries the CLI's last validation error, which names only schema paths.
"""

from __future__ import annotations

import json
from typing import Any

from claude_agent_sdk import ResultMessage

from claudecode.v1 import agent_pb2 as pb
from core_service.errors import ModelError

# json_object: any JSON object (the tool's input must be an object anyway).
ANY_OBJECT: dict[str, Any] = {"type": "object"}
RETRIES_EXHAUSTED = "error_max_structured_output_retries"
REASON = "structured_output_failed"


def output_format_option(fmt: pb.OutputFormat | None) -> dict[str, Any] | None:
    """The `ClaudeAgentOptions.output_format` value for ``fmt``; None for free text."""
    if fmt is None or fmt.kind == pb.OUTPUT_FORMAT_KIND_UNSPECIFIED:
        return None
    if fmt.kind == pb.OUTPUT_FORMAT_KIND_JSON_OBJECT:
        schema: dict[str, Any] = dict(ANY_OBJECT)
    else:
        # The facade checked it is a valid JSON Schema whose root is an object.
        schema = json.loads(fmt.schema_json)
    return {"type": "json_schema", "schema": schema}


def shape_value(fmt: pb.OutputFormat | None) -> str:
    """The output format as a `ProcessShape.output_format` value: the option as
    canonical JSON text ("" for free text), so equal schemas share a process."""
    option = output_format_option(fmt)
    if option is None:
        return ""
    return json.dumps(option, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def answer_json(document: Any) -> str:
    """The document as the answer text: compact JSON, as the CLI's own `result`."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def structured_answer(result: ResultMessage) -> str | None:
    """The structured answer of a finished turn run with an output format, as
    JSON text; ModelError (reason structured_output_failed) when the model gave
    none. None for any other failed result (a model error, a cancellation),
    which the caller reports as it reports every failed turn."""
    if result.subtype == RETRIES_EXHAUSTED:
        last = "; ".join(result.errors or []) or "no valid document"
        raise ModelError(
            f"Claude Code could not produce a JSON document matching the schema: {last}",
            reason=REASON,
        )
    if result.is_error:
        return None
    if result.structured_output is None:
        raise ModelError(
            "The model answered without the structured output the response format asks for.",
            reason=REASON,
        )
    return answer_json(result.structured_output)
