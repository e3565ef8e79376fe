"""The role table: every model role once, with its interface, default spec and how many calls the
service lets it run at once. Settings' defaults, the registry's role check, the pool's wrappers, the
service's concurrency limits and the /v1/models listing are all derived from it, so a new role is one
row here (plus its interface in base.py and a wrapper in pool.py)."""

from __future__ import annotations

from dataclasses import dataclass

from taleloom.backends.base import Backend, Captioner, Illustrator, Narrator, TextModel, Upscaler


@dataclass(frozen=True)
class Role:
    name: str  # the Settings field and registry key
    interface: type[Backend]  # what a backend of this role must subclass
    default: str  # spec used when the settings name none (offline, CPU)
    concurrency: int  # calls at once in the service (TALELOOM_CONCURRENCY overrides)
    description: str = ""


ROLE_TABLE: dict[str, Role] = {r.name: r for r in [
    Role("captioner", Captioner, "embedded", 1, "describes the photo"),
    Role("llm", TextModel, "embedded", 1, "writes and translates the story"),  # Qwen2.5-Coder-1.5B; embedded:smollm2 is fast
    Role("illustrator", Illustrator, "embedded", 1, "draws the pages (its batcher's dispatcher threads)"),
    Role("upscaler", Upscaler, "embedded", 1, "enlarges the pictures to print size"),
    Role("narrator", Narrator, "piper", 2, "reads the pages aloud"),
]}
ROLES: tuple[str, ...] = tuple(ROLE_TABLE)
DEFAULT_CONCURRENCY: dict[str, int] = {r.name: r.concurrency for r in ROLE_TABLE.values()}
