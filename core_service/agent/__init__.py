"""Where a request becomes a Claude Code turn: workspaces, the permission
callback, client options, the pre-started pool, and the turn runner."""
