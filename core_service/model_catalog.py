"""The Claude models we offer and the names that resolve to them."""

from __future__ import annotations

from dataclasses import dataclass, field

from core_service.errors import NotFound


@dataclass(frozen=True)
class ModelEntry:
    id: str
    display_name: str
    created: int
    aliases: tuple[str, ...] = field(default_factory=tuple)


# The models of the bundled Claude Code's own catalog that clients are likely to
# ask for, newest first per family; the short aliases resolve as Claude Code
# resolves them. `created` is the release month (Unix time), for OpenAI's
# "created" field.
DEFAULT_MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("claude-opus-5-5", "Claude Opus 5.5", 1788220800, ("opus",)),
    ModelEntry("claude-opus-5", "Claude Opus 5", 1780272000),
    ModelEntry("claude-opus-4-8", "Claude Opus 4.8", 1772323200),
    ModelEntry("claude-opus-4-5", "Claude Opus 4.5", 1761955200),
    ModelEntry("claude-sonnet-5-5", "Claude Sonnet 5.5", 1788220800, ("sonnet",)),
    ModelEntry("claude-sonnet-5", "Claude Sonnet 5", 1775001600),
    ModelEntry("claude-sonnet-4-6", "Claude Sonnet 4.6", 1769904000),
    ModelEntry("claude-sonnet-4-5", "Claude Sonnet 4.5", 1759276800),
    ModelEntry("claude-haiku-5-5", "Claude Haiku 5.5", 1788220800, ("haiku",)),
    ModelEntry("claude-haiku-4-5", "Claude Haiku 4.5", 1759276800),
)


class ModelCatalog:
    def __init__(
        self,
        models: tuple[ModelEntry, ...] = DEFAULT_MODELS,
        extra_aliases: dict[str, str] | None = None,
    ) -> None:
        self._models = {m.id: m for m in models}
        self._alias_to_id: dict[str, str] = {}
        self.set_extra_aliases(extra_aliases or {})

    def set_extra_aliases(self, extra: dict[str, str]) -> None:
        """Replaces the configured aliases (live configuration)."""
        aliases: dict[str, str] = {}
        for m in self._models.values():
            for alias in m.aliases:
                aliases[alias] = m.id
        for alias, target in extra.items():
            # A configured alias may point at an id or at another alias.
            aliases[alias] = aliases.get(target, target)
        self._alias_to_id = aliases

    def resolve(self, name: str) -> ModelEntry:
        """The model `name` means; NotFound(reason=model_not_found) otherwise."""
        key = name.strip()
        model_id = self._alias_to_id.get(key, key)
        entry = self._models.get(model_id)
        if entry is None:
            raise NotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                reason="model_not_found",
                param="model",
            )
        return entry

    def aliases_of(self, model_id: str) -> list[str]:
        return sorted(a for a, target in self._alias_to_id.items() if target == model_id)

    def models(self) -> list[ModelEntry]:
        return list(self._models.values())
