"""The settings of one world build, passed to every worker (small and picklable)."""

from dataclasses import dataclass

KINDS = ("images", "speech", "music", "conversations")
# The world names its kinds of items in the plural, as its folders; codecs, the layout and the tasks
# name modalities in the singular. The kinds that hold one modality's items, and the one way between
# the two names (kind_of, modality_of): no other module keeps a table of its own.
MODALITY_KINDS = {"image": "images", "speech": "speech", "music": "music"}
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


def kind_of(modality: str) -> str:
    """The world kind that holds a modality's items: image -> images, speech -> speech, music -> music."""
    try:
        return MODALITY_KINDS[modality]
    except KeyError:
        raise ValueError(f"no world kind holds {modality!r} items (modalities: {', '.join(MODALITY_KINDS)})") from None


def modality_of(kind: str) -> str:
    """The modality of a world kind's items: images -> image, speech -> speech, music -> music."""
    for modality, held in MODALITY_KINDS.items():
        if held == kind:
            return modality
    raise ValueError(f"world kind {kind!r} holds no single modality (kinds: {', '.join(MODALITY_KINDS.values())})")
