"""A turn, from request to stored outcome, as a pipeline of small parts.

`service.TurnService` composes them in order: `admission` (may this key run
this model now?), `planning` (which session serves the turn?), `running`
(one turn over one Claude Code process: SDK messages in, events out) and
`outcome` (what happened: status, fingerprint, what is stored and logged).
`registry` keeps the live processes and per-session locks; `lifecycle`
deletes and expires sessions.
"""
