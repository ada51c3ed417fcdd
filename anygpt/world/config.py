"""The settings of one world build, passed to every worker (small and picklable)."""

from dataclasses import dataclass

KINDS = ("images", "speech", "music", "conversations")
GENERATOR_VERSION = "world-1"  # bump whenever the same seed would give different items


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    n: int = 400  # items per kind
    clip_seconds: float = 5.0  # music clips, in seconds
    image_size: int = 64  # pixels per side
    clips_per_render: int = 3  # music clips cut from one rendering of a piece
    soundfont: str | None = None  # None: the first GM font found (music.SOUNDFONT_CANDIDATES)
    kinds: tuple[str, ...] = KINDS
