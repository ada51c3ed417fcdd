"""SEED-2, AnyGPT's image tokenizer, behind the codec interface: registered as "seed2".

    encode  PIL image -> bicubic resize to 224x224 (no crop) -> CLIP mean/std
                      -> visual_encoder (EVA ViT-g) -> ln_vision       (1, 257, 1408)
                      -> Qformer over query_tokens                      (1, 32, 768)
                      -> encode_task_layer (Linear-Tanh-Linear)         (1, 32, 32)
                      -> quantize: nearest of 8192 codebook rows        codes (1, 32)
    decode  codes (1, 32) -> quantize.embedding                         (1, 32, 32)
                      -> decode_task_layer (Linear-Tanh-Linear) + pos_embed_image -> blocks_image
                      -> image_down (768->256->128->32, ReLU, no bias)  (1, 32, 32) -> (1, 1024)
                      -> distill_image_proj                             unCLIP embedding (1, 1024)
                      -> Stable Diffusion 2.1 unCLIP (unclip.py)        PIL image, 768x768

Attribute names are the release's (`Blip2QformerQuantizer`), so `state_dict()` has its checkpoint's
layout; checkpoint.py lists what of that checkpoint goes unused. At the tiny sizes, codes and
embeddings were checked equal to the release's own modules run on the same weights (see the test).

Config keys (all plain JSON; `config()` returns them, so the registry can rebuild the codec):
    path          the official seed-tokenizer-2 folder, or checkpoint file(s); None: random weights
    unclip_path   a local stable-diffusion-2-1-unclip folder; needed only to decode
    device, dtype where the tokenizer and the pipeline run ("cpu", "cuda"; "float32", "float16", ...);
                  device "meta" builds the layout only (names and shapes, no weights, nothing loaded)
    config        a preset name ("official", "tiny") or a dict of Seed2Config; default: official
                  with `path`, tiny without
    seed          seed of the random weights (ignored with `path`)
    guidance_scale, num_inference_steps, noise_level, height, width   unCLIP sampling (unclip.py)
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from anygpt.codecs.base import register_codec
from anygpt.codecs.seed2.checkpoint import checkpoint_files, load_checkpoint
from anygpt.codecs.seed2.config import Seed2Config, resolve_config
from anygpt.codecs.seed2.eva_vit import EvaViT
from anygpt.codecs.seed2.qformer import QFormer
from anygpt.codecs.seed2.quantizer import VectorQuantizer, ViTBlock
from anygpt.codecs.seed2.unclip import (
    UnclipSampling,
    embedding_dim,
    load_unclip_pipeline,
    render,
)
from anygpt.errors import AnyGPTError, BundleError, LayoutError
from anygpt.media import as_image

# OpenAI CLIP's pixel statistics (RGB, after scaling to [0, 1]); the release normalises with these.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def parse_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise AnyGPTError(f"seed2: unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def preprocess(image: Image.Image | np.ndarray, size: int) -> torch.Tensor:
    """RGB image -> CLIP-normalised pixels (1, 3, size, size), float32.

    As the release: the whole image is resized to size x size with PIL's bicubic filter (aspect
    ratio not kept, nothing cropped), scaled to [0, 1], then normalised with CLIP's mean and std.
    """
    resized = as_image(image, source="seed2").resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)  # (size, size, 3) in [0, 1]
    x = (x - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    return x.permute(2, 0, 1)[None].contiguous()  # (1, 3, size, size)


def _mlp(sizes: list[int], act: type[nn.Module], bias: bool = True) -> nn.Sequential:
    """Linear layers between consecutive sizes with `act` between them (indices 0, 2, 4, ... are Linear)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        if i:
            layers.append(act())
        layers.append(nn.Linear(a, b, bias=bias))
    return nn.Sequential(*layers)


@register_codec("seed2", "image")
class Seed2Codec(nn.Module):
    """SEED-2: an image <-> 32 codes of 8192, and codes -> a 1024-d unCLIP embedding -> an image."""

    def __init__(
        self,
        path: str | os.PathLike | list[str] | None = None,
        unclip_path: str | os.PathLike | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        config: str | dict | Seed2Config | None = None,
        seed: int = 0,
        guidance_scale: float = 10.0,
        num_inference_steps: int = 20,
        noise_level: int = 0,
        height: int | None = None,
        width: int | None = None,
    ):
        super().__init__()
        cfg = resolve_config(config if config is not None else ("official" if path is not None else "tiny"))
        self.cfg = cfg
        self.modality = "image"
        self.codebook_size = cfg.codebook_size
        self.num_codebooks = 1
        self.frame_rate = None
        self.tokens_per_item = cfg.tokens_per_item
        self.sample_rate = None
        self.path = [str(p) for p in path] if isinstance(path, (list, tuple)) else (
            None if path is None else str(path))
        self.unclip_path = None if unclip_path is None else str(unclip_path)
        self.device_name, self.dtype_name, self.seed = str(device), dtype, seed
        self.sampling = UnclipSampling(guidance_scale, num_inference_steps, noise_level, height, width)
        self._pipeline = None  # the unCLIP pipeline, loaded on the first decode
        torch_dtype = parse_dtype(dtype)

        # With a checkpoint, build on the meta device (no memory, no random init) and let the
        # loaded tensors become the parameters; the official model has 1.12 B of them.
        on_meta = path is not None or self.device_name == "meta"
        with torch.device("meta" if on_meta else "cpu"):
            self._build(cfg)
        if self.device_name == "meta":
            return
        if path is not None:
            load_checkpoint(self, checkpoint_files(path))
        else:
            self._init_weights(seed)
        self.to(device=self.device_name, dtype=torch_dtype)
        self.requires_grad_(False)
        self.eval()

    # --- construction --------------------------------------------------------------------------

    def _build(self, cfg: Seed2Config) -> None:
        q, hidden = cfg.qformer, cfg.qformer.hidden_size
        # Encoder
        self.visual_encoder = EvaViT(cfg.vit)
        self.ln_vision = nn.LayerNorm(cfg.vit.width, eps=q.vision_layer_norm_eps)
        self.Qformer = QFormer(q, cfg.vit.width)
        self.query_tokens = nn.Parameter(torch.zeros(1, q.num_query_tokens, hidden))
        self.encode_task_layer = _mlp([hidden, hidden, cfg.codebook_dim], nn.Tanh)
        self.quantize = VectorQuantizer(cfg.codebook_size, cfg.codebook_dim)
        # Generation-embedding decoder
        self.decode_task_layer = _mlp([cfg.codebook_dim, cfg.codebook_dim, hidden], nn.Tanh)
        self.pos_embed_image = nn.Parameter(torch.zeros(1, q.num_query_tokens, hidden))
        self.blocks_image = nn.ModuleList(
            ViTBlock(hidden, cfg.decoder_heads, cfg.decoder_mlp_ratio) for _ in range(cfg.decoder_depth)
        )
        self.image_down = _mlp([hidden, *cfg.down_dims], nn.ReLU, bias=False)
        self.distill_image_proj = nn.Linear(q.num_query_tokens * cfg.down_dims[-1], cfg.image_embed_dim)

    @torch.no_grad()
    def _init_weights(self, seed: int) -> None:
        """Seeded random weights: every config() plus seed rebuilds the same model.

        Scaled to keep activations near unit size (weights ~ N(0, 1/fan_in), codebook ~ N(0, 0.5^2),
        about the spread of the Tanh-bounded features), so a random model's codes and embeddings
        depend on its input; the release's own initialisation (std 0.02, a codebook in +-1/8192)
        would map every image to the same codes and every code to nearly the same embedding.
        """
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if name == "quantize.embedding.weight":
                p.normal_(0.0, 0.5, generator=gen)
            elif "LayerNorm" in name or ".norm" in name or name.startswith("ln_vision"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            elif p.ndim >= 2 and not name.endswith(("_token", "tokens", "pos_embed", "pos_embed_image")):
                p.normal_(0.0, p[0].numel() ** -0.5, generator=gen)  # (out, in, ...): fan_in = in * ...
            else:
                p.normal_(0.0, 1.0, generator=gen)  # class token, queries, position embeddings

    def config(self) -> dict:
        return {
            "path": self.path,
            "unclip_path": self.unclip_path,
            "device": self.device_name,
            "dtype": self.dtype_name,
            "config": self.cfg.to_dict(),
            "seed": self.seed,
            "guidance_scale": self.sampling.guidance_scale,
            "num_inference_steps": self.sampling.num_inference_steps,
            "noise_level": self.sampling.noise_level,
            "height": self.sampling.height,
            "width": self.sampling.width,
        }

    @property
    def _param_dtype(self) -> torch.dtype:
        return self.query_tokens.dtype

    # --- encoding ------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels (B, 3, S, S) -> codes (B, 32)."""
        pixels = pixels.to(self.query_tokens.device, self._param_dtype)
        image = self.visual_encoder(pixels)  # (B, 257, 1408)
        ln = self.ln_vision  # in float32 whatever the dtype, as the release's LayerNorm subclass does
        image = F.layer_norm(image.float(), ln.normalized_shape, ln.weight.float(), ln.bias.float(), ln.eps)
        image = image.to(self._param_dtype)
        queries = self.query_tokens.expand(len(pixels), -1, -1)  # (B, 32, 768)
        z = self.encode_task_layer(self.Qformer(queries, image))  # (B, 32, codebook_dim)
        return self.quantize.nearest(z)  # (B, 32)

    @torch.no_grad()
    def encode(self, media: Image.Image | np.ndarray) -> torch.Tensor:
        """RGB image (PIL, or an HxWx3 uint8 array) -> codes (1, 32), int64 on the CPU."""
        return self.encode_pixels(preprocess(media, self.cfg.vit.image_size)).cpu().long()

    # --- decoding ------------------------------------------------------------------------------

    def check_codes(self, codes: Any) -> torch.Tensor:
        """Codes (1, 32) as a LongTensor, or a LayoutError saying what is wrong with the span."""
        codes = torch.as_tensor(codes)
        n = self.tokens_per_item
        if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            raise LayoutError(f"seed2: codes must be integers, got {codes.dtype}")
        if codes.ndim != 2 or codes.shape[0] != 1:
            raise LayoutError(f"seed2: expected codes of shape (1, {n}), got {tuple(codes.shape)}")
        if codes.shape[1] != n:
            raise LayoutError(f"seed2: an image span must hold exactly {n} codes, this one holds {codes.shape[1]}")
        bad = (codes < 0) | (codes >= self.codebook_size)
        if bad.any():
            t = int(bad.nonzero()[0, 1])
            raise LayoutError(f"seed2: code {int(codes[0, t])} at position {t} is outside [0, {self.codebook_size})")
        return codes.long()

    @torch.no_grad()
    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, 32) -> unCLIP image embeddings (B, 1024), float32 on the CPU."""
        codes = codes.to(self.query_tokens.device)
        x = self.decode_task_layer(self.quantize.lookup(codes))  # (B, 32, 768)
        x = x + self.pos_embed_image
        for block in self.blocks_image:
            x = block(x)
        x = self.image_down(x).flatten(1)  # (B, 32, 32) -> (B, 1024)
        return self.distill_image_proj(x).float().cpu()  # (B, 1024)

    def pipeline(self):
        """The unCLIP pipeline (loaded once, on first use)."""
        if self._pipeline is None:
            if self.unclip_path is None:
                raise BundleError(
                    "seed2: decoding needs `unclip_path`, a local stable-diffusion-2-1-unclip folder"
                )
            pipe = load_unclip_pipeline(self.unclip_path, device=self.device_name, dtype=parse_dtype(self.dtype_name))
            if embedding_dim(pipe) != self.cfg.image_embed_dim:
                raise BundleError(
                    f"{self.unclip_path}: its UNet takes {embedding_dim(pipe)}-d image embeddings, "
                    f"SEED-2 makes {self.cfg.image_embed_dim}-d ones"
                )
            self._pipeline = pipe
        return self._pipeline

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None
    ) -> Image.Image:
        """Codes (1, 32) -> RGB image (768x768 with SD 2.1 unCLIP); `voice` is unused.

        The same codes and `seed` give the same image; `seed=None` draws fresh random latents.
        """
        embedding = self.embed_codes(self.check_codes(codes))  # (1, 1024)
        return render(self.pipeline(), embedding, self.sampling, seed)
