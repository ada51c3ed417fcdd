"""SEED-2, the image tokenizer of AnyGPT: EVA ViT-g + causal Q-Former + VQ (8192 x 32), 32 codes per
image, decoded through a 1024-d unCLIP embedding and Stable Diffusion 2.1 unCLIP.

    config.py      typed configs and presets (official, tiny)
    eva_vit.py     EVA-CLIP ViT-g/14 image encoder
    qformer.py     the causal BLIP-2 Q-Former (query path only)
    quantizer.py   nearest-neighbour VQ and the decoder's ViT block
    checkpoint.py  strict loading of the release's weights
    unclip.py      the diffusers unCLIP pipeline that renders an embedding
    codec.py       Seed2Codec, registered as codec "seed2"

Importing `anygpt.codecs.seed2.codec` registers the codec; diffusers is imported only to decode.
"""

from anygpt.codecs.seed2.config import (
    OFFICIAL,
    PRESETS,
    TINY,
    EvaViTConfig,
    QFormerConfig,
    Seed2Config,
)

__all__ = ["OFFICIAL", "PRESETS", "TINY", "EvaViTConfig", "QFormerConfig", "Seed2Config"]
