"""A session's end, written once: deleted by its owner or an admin, or expired
by retention. Its process stops, its row is marked deleted, its workspace and
Claude Code home are removed."""

from __future__ import annotations

import asyncio
from datetime import datetime

from core_service.agent.workspace_layout import WorkspaceLayout
from core_service.store import SessionRow, SessionStore
from core_service.turns.registry import ProcessRegistry


class SessionLifecycle:
    def __init__(
        self, registry: ProcessRegistry, store: SessionStore, layout: WorkspaceLayout
    ) -> None:
        self._registry = registry
        self._store = store
        self._layout = layout

    async def delete(self, session: SessionRow) -> None:
        await self._registry.close_session(session.id)
        await asyncio.to_thread(self._store.mark_session_deleted, session.id)
        await asyncio.to_thread(self._layout.remove, session.place)

    async def expire_inactive_since(self, before: datetime) -> int:
        """Deletes every session last active before `before`; returns how many."""
        expired = await asyncio.to_thread(self._store.expired_sessions, before)
        for session in expired:
            await self.delete(session)
        return len(expired)
