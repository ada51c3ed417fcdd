"""Stable Diffusion 2.1 unCLIP as SEED-2's image renderer: a 1024-d image embedding -> a picture.

    embedding (1, 1024) -> StableUnCLIPImg2ImgPipeline(image_embeds=..., prompt "")
        UNet conditioned on [embedding ; noise-level embedding] (class labels) and the empty prompt,
        classifier-free guidance against an all-zero embedding, DDIM steps -> VAE -> 768x768 RGB

The pipeline comes from a local stable-diffusion-2-1-unclip folder (`local_files_only=True`: nothing
is downloaded). Its CLIP image encoder (ViT-H/14, about 632 M parameters) turns pictures into
embeddings; SEED-2 supplies the embedding itself, so the encoder is not loaded (see `_DtypeProbe`).
Every call draws fresh initial latents from its own seeded generator; the release instead drew one
latent tensor at start-up and reused it for every image.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from anygpt.errors import AnyGPTError, BundleError


@dataclass(frozen=True)
class UnclipSampling:
    """How an embedding is rendered; the defaults are the release's."""

    guidance_scale: float = 10.0
    num_inference_steps: int = 20
    noise_level: int = 0  # noise added to the embedding before conditioning (0..999)
    height: int | None = None  # None: the UNet's native size (768 for SD 2.1 unCLIP)
    width: int | None = None

    def __post_init__(self):
        problems = []
        if self.num_inference_steps < 1:
            problems.append(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if not 0 <= self.noise_level < 1000:
            problems.append(f"noise_level must be in [0, 1000), got {self.noise_level}")
        if self.guidance_scale < 0:
            problems.append(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        for name in ("height", "width"):
            v = getattr(self, name)
            if v is not None and (v <= 0 or v % 8):
                problems.append(f"{name} must be a positive multiple of 8, got {v}")
        if problems:
            raise AnyGPTError("seed2 unCLIP sampling: " + "; ".join(problems))


class _DtypeProbe(nn.Module):
    """Stands in for the unused CLIP image encoder.

    diffusers reads `next(pipe.image_encoder.parameters()).dtype` even when `image_embeds` is given,
    so the pipeline needs some module there; an empty parameter answers that question.
    """

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.probe = nn.Parameter(torch.empty(0, dtype=dtype), requires_grad=False)

    @property
    def dtype(self) -> torch.dtype:  # DiffusionPipeline.to() and .dtype ask every component
        return self.probe.dtype

    @property
    def device(self) -> torch.device:
        return self.probe.device


def load_unclip_pipeline(path: str | os.PathLike, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A StableUnCLIPImg2ImgPipeline from a local folder, without its image encoder."""
    try:
        from diffusers import StableUnCLIPImg2ImgPipeline
    except ImportError:
        raise BundleError("seed2: decoding images needs the `diffusers` package (pip install diffusers)") from None
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise BundleError(
            f"{path}: not a diffusers pipeline folder (no model_index.json); "
            "expected a local copy of stabilityai/stable-diffusion-2-1-unclip"
        )
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - present since `dtype=`
        dtype_key = "dtype"
    except ImportError:  # older diffusers only know `torch_dtype`
        dtype_key = "torch_dtype"
    try:
        pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(
            path, local_files_only=True, image_encoder=None, feature_extractor=None, **{dtype_key: dtype}
        )
    except Exception as e:  # noqa: BLE001 - diffusers raises many kinds; the folder is at fault
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise BundleError(f"{path}: cannot load the unCLIP pipeline ({type(e).__name__}: {reason})") from None
    pipe.image_encoder = _DtypeProbe(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def embedding_dim(pipe) -> int:
    """The image-embedding width the pipeline's UNet expects (it also takes an equal-width noise level)."""
    return int(pipe.unet.config.projection_class_embeddings_input_dim) // 2


def render(pipe, embedding: torch.Tensor, sampling: UnclipSampling, seed: int | None) -> Image.Image:
    """One (1, D) image embedding -> one RGB image. `seed=None` draws a fresh random seed."""
    if embedding.shape != (1, embedding_dim(pipe)):
        raise BundleError(
            f"seed2: the unCLIP pipeline takes (1, {embedding_dim(pipe)}) image embeddings, "
            f"the tokenizer made {tuple(embedding.shape)}"
        )
    if seed is None:
        seed = secrets.randbits(63)
    # A CPU generator draws the same latents whatever device the pipeline runs on.
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(
        image_embeds=embedding.to(pipe.device, pipe.unet.dtype),
        guidance_scale=sampling.guidance_scale,
        num_inference_steps=sampling.num_inference_steps,
        noise_level=sampling.noise_level,
        height=sampling.height,
        width=sampling.width,
        generator=generator,
        output_type="pil",
    )
    return out.images[0].convert("RGB")
