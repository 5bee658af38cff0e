"""/v1/sessions: the caller's sessions and their workspace files (extension)."""
