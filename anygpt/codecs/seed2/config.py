"""Typed configs of the SEED-2 image tokenizer, and its presets: `official` and `tiny`.

    image 224x224 -> EVA ViT-g/14 (16x16 patches + CLS = 257 tokens of 1408)
                  -> causal Q-Former, 32 queries of 768 -> Linear-Tanh-Linear -> (32, 32)
                  -> nearest of 8192 codebook rows                           -> codes (1, 32)
    codes (1, 32) -> codebook (32, 32) -> MLP 32->768 -> + positions -> 4 ViT blocks
                  -> down-projection 768->256->128->32 -> flatten (1024,) -> Linear -> unCLIP embedding (1024,)

The official numbers are those of the release's model code (seed_qformer/*.py): EVA ViT-g with
patch 14, width 1408, depth 39, 1408 // 88 = 16 heads, MLP int(1408 * 4.3637) = 6144; BERT-base
Q-Former with a cross-attention every second layer; a decoder of 4 ViT-B blocks (12 heads, MLP x4).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from anygpt.errors import AnyGPTError


@dataclass(frozen=True)
class EvaViTConfig:
    image_size: int = 224  # pixels per side; the input is resized to this square
    patch_size: int = 14  # pixels per patch side: 224 / 14 = 16 patches per side
    width: int = 1408
    depth: int = 39
    num_heads: int = 16  # head dim 88
    mlp_dim: int = 6144
    layer_norm_eps: float = 1e-6

    @property
    def num_tokens(self) -> int:
        """Patches plus the CLS token: 257 for the official config."""
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass(frozen=True)
class QFormerConfig:
    num_query_tokens: int = 32  # = codes per image
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    cross_attention_freq: int = 2  # layers 0, 2, 4, ... attend to the image
    layer_norm_eps: float = 1e-12  # BERT's
    vision_layer_norm_eps: float = 1e-5  # `ln_vision`, a plain nn.LayerNorm over the ViT output


@dataclass(frozen=True)
class Seed2Config:
    vit: EvaViTConfig = field(default_factory=EvaViTConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    codebook_size: int = 8192
    codebook_dim: int = 32
    decoder_depth: int = 4  # ViT blocks of the generation-embedding decoder
    decoder_heads: int = 12
    decoder_mlp_ratio: float = 4.0
    down_dims: tuple[int, ...] = (256, 128, 32)  # bias-free ReLU MLP from hidden_size per query
    image_embed_dim: int = 1024  # the unCLIP image embedding (OpenCLIP ViT-H/14 image space)

    @property
    def tokens_per_item(self) -> int:
        return self.qformer.num_query_tokens

    def to_dict(self) -> dict:
        d = asdict(self)
        d["down_dims"] = list(self.down_dims)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Seed2Config:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise AnyGPTError(f"seed2 config: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        try:
            vit = EvaViTConfig(**d.pop("vit", {}))
            qformer = QFormerConfig(**d.pop("qformer", {}))
            if "down_dims" in d:
                d["down_dims"] = tuple(d["down_dims"])
            cfg = cls(vit=vit, qformer=qformer, **d)
        except TypeError as e:
            raise AnyGPTError(f"seed2 config: {e}") from None
        cfg.validate()
        return cfg

    def validate(self) -> None:
        v, q = self.vit, self.qformer
        problems = []
        if v.image_size % v.patch_size:
            problems.append(f"vit.image_size {v.image_size} is not a multiple of patch_size {v.patch_size}")
        if v.width % v.num_heads:
            problems.append(f"vit.width {v.width} is not a multiple of num_heads {v.num_heads}")
        if q.hidden_size % q.num_heads:
            problems.append(f"qformer.hidden_size {q.hidden_size} is not a multiple of num_heads {q.num_heads}")
        if q.hidden_size % self.decoder_heads:
            problems.append(f"qformer.hidden_size {q.hidden_size} is not a multiple of decoder_heads {self.decoder_heads}")
        if not self.down_dims:
            problems.append("down_dims is empty")
        if problems:
            raise AnyGPTError("seed2 config: " + "; ".join(problems))


# The release's model (Blip2QformerQuantizer defaults with eva_clip_g).
OFFICIAL = Seed2Config()

# Random tiny weights for tests: same interface (32 codes of 8192, a 1024-d unCLIP embedding),
# everything inside shrunk so a forward pass takes milliseconds.
TINY = Seed2Config(
    vit=EvaViTConfig(image_size=56, patch_size=14, width=32, depth=2, num_heads=2, mlp_dim=64),
    qformer=QFormerConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64),
    codebook_dim=8,
    decoder_depth=1,
    decoder_heads=2,
    down_dims=(16, 8, 4),
)

PRESETS: dict[str, Seed2Config] = {"official": OFFICIAL, "tiny": TINY}


def resolve_config(config: str | dict | Seed2Config) -> Seed2Config:
    """A preset name, a plain dict (as `Seed2Config.to_dict()` writes it) or a config."""
    if isinstance(config, Seed2Config):
        config.validate()
        return config
    if isinstance(config, str):
        if config not in PRESETS:
            raise AnyGPTError(f"seed2: unknown config preset {config!r}; presets: {', '.join(PRESETS)}")
        return PRESETS[config]
    if isinstance(config, dict):
        return Seed2Config.from_dict(config)
    raise AnyGPTError(f"seed2: config must be a preset name or a dict, got {type(config).__name__}")
