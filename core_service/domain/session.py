"""A conversation as the core knows it: one Claude Code session, where its
files live, and what its turns used so far."""

from __future__ import annotations

from dataclasses import dataclass

from core_service.agent.workspace_layout import Place


@dataclass(frozen=True)
class SessionRow:
    id: str
    key_id: str
    place: Place
    model: str
    # Unix seconds.
    created_at: int
    last_active_at: int
    turn_count: int
    last_turn_id: str | None
    forked_from: str | None
    # Summed over its turns.
    input_tokens: int
    output_tokens: int
    cost_usd: float
    # Claude Code's own running cost total for the session (it carries it on
    # through resumes and forks); 0 when not known.
    reported_cost_usd: float = 0.0
