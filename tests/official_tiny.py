"""Random-weight, tiny versions of the official AnyGPT artefacts, written in their real formats.

    models/                                    (the release's folder layout)
      anygpt/chat | anygpt/base                a Hugging Face Llama + tokenizer with the official added tokens
      seed-tokenizer-2/seed_quantizer.pt       SEED-2 state dict (tiny sizes)
      speechtokenizer/config.json, ckpt.dev    SpeechTokenizer (tiny sizes)
      soundstorm/speechtokenizer_soundstorm_mls.pt
      encodec_32khz/                           Hugging Face EncodecModel folder
      stable-diffusion-2-1-unclip/             diffusers StableUnCLIPImg2ImgPipeline folder

The loading code under test is the same that loads the real ones; only the sizes differ (the tiny
SEED-2 and SoundStorm presets must be named when loading, since their checkpoints do not say).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

SPEECH_SR = 16000
MUSIC_SR = 32000

SPEECHTOKENIZER_TINY = {  # the release's config.json keys, small sizes; training keys are ignored
    "n_filters": 4,
    "strides": [8, 5, 4, 2],
    "dimension": 32,
    "semantic_dimension": 16,
    "bidirectional": True,
    "dilation_base": 2,
    "residual_kernel_size": 3,
    "n_residual_layers": 1,
    "lstm_layers": 1,
    "activation": "ELU",
    "codebook_size": 1024,
    "n_q": 8,
    "sample_rate": SPEECH_SR,
    "learning_rate": 1e-4,
    "semantic_model_path": "/not/used",
}

ENCODEC_TINY = {  # encodec_32khz's layout (32 kHz, strides 8,5,4,4 -> 50 Hz, 4 x 2048 at 2.2 kbps), tiny widths
    "sampling_rate": MUSIC_SR,
    "audio_channels": 1,
    "upsampling_ratios": [8, 5, 4, 4],
    "codebook_size": 2048,
    "target_bandwidths": [2.2],
    "num_filters": 4,
    "hidden_size": 16,
    "codebook_dim": 16,
    "num_lstm_layers": 1,
    "normalize": False,
    "chunk_length_s": None,
    "overlap": None,
    "norm_type": "weight_norm",
    "use_causal_conv": False,
    "pad_mode": "reflect",
}


def speech(seconds, seed=0, sr=SPEECH_SR):
    """A voiced-speech-like test signal: a 120 Hz buzz with a moving formant, plus a little noise."""
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    buzz = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / sr)) * 0.2
    return (
        buzz * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)) + 0.01 * rng.standard_normal(len(t))
    ).astype(np.float32)


def music(seconds, seed=0, sr=MUSIC_SR):
    """Three notes with harmonics changing every half second, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    notes = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 2) + 1) / 12)
    f = notes[(t * 2).astype(int)]
    wav = sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3)) * 0.3
    return (wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_speechtokenizer(out: Path) -> Path:
    """config.json + ckpt.dev of a tiny SpeechTokenizer whose codebooks cover its encoder's frames."""
    import anygpt.codecs.speechtokenizer as st_codec

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = st_codec.build_speechtokenizer(SPEECHTOKENIZER_TINY)
    with torch.no_grad():  # fresh RVQ codebooks are all zero: draw layer 1 from encoder frames
        clips = [speech(2.0, seed=s) * g for s, g in enumerate((0.2, 0.5, 1.0, 2.0, 4.0, 1.5, 0.8, 3.0))]
        x = torch.from_numpy(np.concatenate(clips))[None, None]  # 16 s: 800 frames
        frames = model.encoder(x)[0].T  # (800, dim)
        rows = torch.randint(len(frames), (1024,))
        for i, layer in enumerate(model.quantizer.vq.layers):
            spread = frames.std(0) * (0.1 if i == 0 else 0.5 / i)
            layer._codebook.embed.copy_(
                (frames[rows] if i == 0 else 0) + torch.randn(1024, frames.shape[1]) * spread
            )
    (out / "config.json").write_text(json.dumps(SPEECHTOKENIZER_TINY))
    torch.save(model.state_dict(), out / "ckpt.dev")
    return out


def write_soundstorm(path: Path) -> Path:
    from anygpt.codecs.soundstorm import PRESETS, SoundStorm

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(SoundStorm(PRESETS["tiny"]).state_dict(), path)
    return path


def write_encodec(out: Path) -> Path:
    """A local folder in Hugging Face format, as facebook/encodec_32khz but tiny and random."""
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(EncodecConfig(**ENCODEC_TINY)).eval()
    with torch.no_grad():  # fresh codebooks are all zero: spread them where encoder frames lie
        frames = model.encoder(torch.from_numpy(music(4.0, seed=9))[None, None])[0].T  # (200, 16)
        for i, layer in enumerate(model.quantizer.layers):
            centre = frames.mean(0) if i == 0 else 0  # later layers quantize residuals around 0
            spread = frames.std(0) * (2.0 if i == 0 else 0.5**i)
            layer.codebook.embed.copy_(centre + torch.randn(2048, frames.shape[1]) * spread)
    model.save_pretrained(out)
    return out


def write_seed(path: Path) -> Path:
    """seed_quantizer.pt of the tiny SEED-2 configuration."""
    from anygpt.codecs.seed2.codec import Seed2Codec

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(Seed2Codec(config="tiny", seed=0).state_dict(), path)
    return path


def write_unclip(out: Path) -> Path:
    """A random-weight Stable unCLIP img2img pipeline (16x16 output), saved like the real folder."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableUnCLIPImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    # A byte-level BPE vocabulary with no merges: each byte is a token (GPT-2's byte -> char map).
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(b) for b in keep] + [chr(256 + n) for n in range(256 - len(keep))]
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    src = out.parent / (out.name + "-tokenizer-src")
    src.mkdir(parents=True)
    (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("#version: 0.2\n")
    (src / "tokenizer_config.json").write_text(json.dumps({"pad_token": "!", "model_max_length": 77}))
    tokenizer = CLIPTokenizer.from_pretrained(src)
    assert tokenizer("")["input_ids"] == [vocab["<|startoftext|>"], vocab["<|endoftext|>"]]

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * 1024,  # embedding + noise level
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, layers_per_block=1,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["!"],
    ))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=1024,
    ))
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=None, image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=1024),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer, text_encoder=text_encoder, unet=unet,
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1),
        vae=vae,
    )
    pipe.save_pretrained(out)
    return out


def write_llm(out: Path, *, chat: bool) -> Path:
    """A tiny Llama whose tokenizer holds the official added tokens (the chat model's extras too)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from anygpt.bundles.debug import build_text_tokenizer
    from anygpt.layout import official_layout_config
    from anygpt.model import expand_vocabulary

    tokenizer = build_text_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         bos_token_id=1, eos_token_id=2, max_position_embeddings=4096))
    expand_vocabulary(model, tokenizer, official_layout_config(chat_extras=chat))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_models(root: Path, *, chat: bool = True) -> Path:
    """The release's models/ folder with every component, tiny and random."""
    write_llm(root / "anygpt" / ("chat" if chat else "base"), chat=chat)
    write_seed(root / "seed-tokenizer-2" / "seed_quantizer.pt")
    write_speechtokenizer(root / "speechtokenizer")
    write_soundstorm(root / "soundstorm" / "speechtokenizer_soundstorm_mls.pt")
    write_encodec(root / "encodec_32khz")
    write_unclip(root / "stable-diffusion-2-1-unclip")
    return root
