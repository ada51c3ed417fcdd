"""One training recipe per small codec, and their evaluations, on the offline world.

    train_image(world, TrainConfig)       world images -> small-image
    train_speech(world, TrainConfig)      world speech (+ transcripts for CTC on layer 1) -> small-speech
    train_music(world, TrainConfig)       world music, random crops -> small-music
    train_soundstorm(world, TrainConfig)  a trained small-speech (cfg.codec) -> its SoundStorm trained
    evaluate(kind, codec_dir, world)      reconstruction, code usage, layer-1 CER, SoundStorm accuracy

Every recipe writes OUT/ as described in train_common and exports OUT/export/ (codec.json +
weights.safetensors), which `load_codec_dir` or a bundle's CodecSlot loads through the registry.

SoundStorm is trained as in the SoundStorm paper: for each step one level q is drawn; a random
prefix of every sequence (the prompt) stays unmasked at every level; levels below q are given,
level q is masked on a cosine-scheduled share of the remaining frames, levels above q are masked
everywhere (as `SoundStorm.generate` sees them); the loss is cross-entropy on level q's masked codes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.codecs.small import train_common as tc
from anygpt.codecs.small.audio import (
    SmallMusicCodec,
    SmallSpeechCodec,
    audio_losses,
    text_to_ctc,
)
from anygpt.codecs.small.image import (
    SmallImageCodec,
    image_losses,
    tensor_to_image,
)
from anygpt.errors import AnyGPTError

KINDS = ("image", "speech", "music", "soundstorm")
CODEC_NAMES = {"image": "small-image", "speech": "small-speech", "music": "small-music", "soundstorm": "small-speech"}
WORLD_KIND = {"image": "images", "speech": "speech", "music": "music", "soundstorm": "speech"}


@dataclass
class TrainConfig:
    """A recipe's settings; `codec` holds the codec's constructor arguments (soundstorm: the path of
    a trained small-speech export instead)."""

    kind: str
    out: str
    steps: int
    batch: int
    lr: float
    warmup: int = 50
    save_every: int = 200
    seed: int = 0
    split: str = "train"
    max_items: int | None = None  # read at most this many world items (None: all)
    crop_seconds: float = 1.0  # music: training crop; speech: longest utterance kept whole (see max_seconds)
    max_seconds: float = 6.0  # speech: longer utterances are cropped and left out of the CTC loss
    ctc_weight: float = 1.0
    commit_weight: float = 0.25
    max_frames: int = 250  # soundstorm: longest training sequence (5 s)
    vq_warmup: int = 0  # speech, music: steps that skip quantization before the codebooks are seeded
    export_dtype: str = "float16"
    codec: dict | str = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULTS: dict[str, dict[str, Any]] = {  # per kind: steps, batch, lr (what a full run uses)
    "image": dict(steps=4000, batch=32, lr=2e-3),
    "speech": dict(steps=3000, batch=6, lr=1e-3, max_seconds=5.0, vq_warmup=200),
    "music": dict(steps=3000, batch=8, lr=1e-3, crop_seconds=1.0, vq_warmup=200),
    "soundstorm": dict(steps=3000, batch=16, lr=1e-3),
}


def default_config(kind: str, out: str, **overrides: Any) -> TrainConfig:
    if kind not in KINDS:
        raise AnyGPTError(f"unknown codec kind {kind!r}: choose from {', '.join(KINDS)}")
    values = {**DEFAULTS[kind], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(kind=kind, out=str(out), **values)


# ---------------------------------------------------------------------------------------------
# Data: the world read once into memory; step s's batch is drawn from a generator seeded by (seed, s)


def load_images(world: str | Path, split: str, max_items: int | None) -> torch.Tensor:
    """World images -> uint8 (N, 3, 64, 64)."""
    from anygpt.data.world.reader import iter_items

    out = []
    for item in iter_items(world, "images", split):
        out.append(torch.from_numpy(np.array(item["image"].convert("RGB"), dtype=np.uint8)).permute(2, 0, 1))
        if max_items and len(out) >= max_items:
            break
    if not out:
        raise AnyGPTError(f"{world}: no images in split {split!r}")
    return torch.stack(out)


def load_audio_items(world: str | Path, kind: str, split: str, max_items: int | None, sample_rate: int) -> list[dict]:
    """World speech or music -> [{"wav": float32 (L,), "text": str, "speaker": str}]."""
    from anygpt.data.world.reader import iter_items

    out = []
    for item in iter_items(world, kind, split):
        if item["sample_rate"] != sample_rate:
            import soxr

            item["waveform"] = soxr.resample(item["waveform"], item["sample_rate"], sample_rate).astype(np.float32)
        out.append({"wav": item["waveform"].astype(np.float32), "text": item.get("text", ""),
                    "speaker": item.get("speaker", "")})
        if max_items and len(out) >= max_items:
            break
    if not out:
        raise AnyGPTError(f"{world}: no {kind} in split {split!r}")
    return out


def speech_batch(items: list[dict], rng: np.random.Generator, batch: int, hop: int, sample_rate: int,
                 max_seconds: float):
    """B random utterances, zero-padded to the longest (a whole number of frames).
    Returns wav (B, L), targets (list of CTC class lists; [] = left out), frame lengths (B,)."""
    idx = rng.integers(len(items), size=batch)
    cap = int(max_seconds * sample_rate) // hop * hop
    wavs, targets, frames = [], [], []
    for i in idx:
        w, text = items[i]["wav"], items[i]["text"]
        if len(w) > cap:  # cropped: its transcript no longer fits, so no CTC for it
            start = int(rng.integers(len(w) - cap + 1))
            w, text = w[start : start + cap], ""
        wavs.append(w)
        targets.append(text_to_ctc(text))
        frames.append(math.ceil(len(w) / hop))
    L = max(frames) * hop
    x = torch.zeros(batch, L)
    for b, w in enumerate(wavs):
        x[b, : len(w)] = torch.from_numpy(w)
    return x, targets, torch.tensor(frames)


def crop_batch(items: list[dict], rng: np.random.Generator, batch: int, length: int) -> torch.Tensor:
    """B random crops of `length` samples (shorter clips zero-padded): (B, length)."""
    x = torch.zeros(batch, length)
    for b, i in enumerate(rng.integers(len(items), size=batch)):
        w = items[i]["wav"]
        start = int(rng.integers(max(1, len(w) - length + 1)))
        seg = w[start : start + length]
        x[b, : len(seg)] = torch.from_numpy(seg)
    return x


# ---------------------------------------------------------------------------------------------
# Recipes


def _spec(cfg: TrainConfig, stop_after: int | None, progress: bool, resume: bool) -> tc.LoopSpec:
    spec = tc.LoopSpec(out=Path(cfg.out), steps=cfg.steps, lr=cfg.lr, warmup=min(cfg.warmup, cfg.steps),
                       save_every=cfg.save_every, seed=cfg.seed, stop_after=stop_after, progress=progress)
    spec.resume = resume
    return spec


def _optimizer(module: torch.nn.Module, cfg: TrainConfig, betas: tuple[float, float],
               weight_decay: float = 0.0) -> tuple[list[torch.nn.Parameter], torch.optim.AdamW]:
    params = [p for p in module.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=weight_decay)


def _finish(codec, cfg: TrainConfig, name: str) -> Path:
    return tc.export_codec(codec, name, Path(cfg.out) / tc.EXPORT, dtype=cfg.export_dtype)


def train_image(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, images: torch.Tensor | None = None) -> list[dict]:
    codec = SmallImageCodec(**dict(cfg.codec))
    data = images if images is not None else load_images(world, cfg.split, cfg.max_items)  # (N, 3, 64, 64) uint8
    net = codec.net
    params, opt = _optimizer(net, cfg, (0.9, 0.99))
    spec = _spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        rng = tc.step_rng(cfg.seed, s)
        x = data[torch.from_numpy(rng.integers(len(data), size=cfg.batch))].float() / 127.5 - 1.0
        y, codes, commit = net(x, tc.step_generator(cfg.seed, s))
        parts = image_losses(x, y)
        loss = parts["l1"] + parts["l2"] + 0.5 * parts["edge"] + cfg.commit_weight * commit
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        used = codes.unique().numel() / codec.codebook_size
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, "commit": commit.item(),
                "codes_used": used}

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=_config_json(cfg, codec), title="small-image")
    if _finished(cfg):
        _finish(codec, cfg, "small-image")
    return rows


def _config_json(cfg: TrainConfig, codec) -> dict:
    return {"train": cfg.to_dict(), "codec": codec.config()}


def _finished(cfg: TrainConfig) -> bool:
    state = Path(cfg.out) / tc.CHECKPOINT
    return state.is_file() and int(torch.load(state, map_location="cpu", weights_only=True)["step"]) >= cfg.steps


def train_speech(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                 resume: bool = True, items: list[dict] | None = None) -> list[dict]:
    codec = SmallSpeechCodec(**dict(cfg.codec))
    sr, hop = codec.sample_rate, codec.hop
    data = items if items is not None else load_audio_items(world, "speech", cfg.split, cfg.max_items, sr)
    net = codec.net  # the SoundStorm is trained afterwards (train_soundstorm)
    params, opt = _optimizer(net, cfg, (0.8, 0.99))
    spec = _spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        rng = tc.step_rng(cfg.seed, s)
        x, targets, frames = speech_batch(data, rng, cfg.batch, hop, sr, cfg.max_seconds)
        out = net(x, tc.step_generator(cfg.seed, s), quantize=s >= cfg.vq_warmup)
        parts = audio_losses(x, out["recon"], sr)
        loss = parts["stft"] + parts["mel"] + 0.1 * parts["wave"] + cfg.commit_weight * out["commit"]
        metrics = {}
        if net.ctc is not None and cfg.ctc_weight:
            keep = [b for b, t in enumerate(targets) if 0 < len(t) <= int(frames[b])]
            if keep:
                logp = net.ctc_logits(out["layer1"][keep])  # (B', T, V)
                flat = torch.tensor([c for b in keep for c in targets[b]])
                ctc = F.ctc_loss(logp.transpose(0, 1), flat, frames[keep], torch.tensor([len(targets[b]) for b in keep]),
                                 blank=0, zero_infinity=True)
                loss = loss + cfg.ctc_weight * ctc
                metrics["ctc"] = ctc.item()
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        used = out["codes"][:, 0].unique().numel() / codec.codebook_size
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, **metrics,
                "commit": out["commit"].item(), "layer1_used": used}

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=_config_json(cfg, codec), title="small-speech")
    if _finished(cfg):
        _finish(codec, cfg, "small-speech")
    return rows


def train_music(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, items: list[dict] | None = None) -> list[dict]:
    codec = SmallMusicCodec(**dict(cfg.codec))
    sr, hop = codec.sample_rate, codec.hop
    data = items if items is not None else load_audio_items(world, "music", cfg.split, cfg.max_items, sr)
    length = max(1, round(cfg.crop_seconds * sr / hop)) * hop
    net = codec.net
    params, opt = _optimizer(net, cfg, (0.8, 0.99))
    spec = _spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        x = crop_batch(data, tc.step_rng(cfg.seed, s), cfg.batch, length)
        out = net(x, tc.step_generator(cfg.seed, s), quantize=s >= cfg.vq_warmup)
        parts = audio_losses(x, out["recon"], sr)
        loss = parts["stft"] + parts["mel"] + 0.1 * parts["wave"] + cfg.commit_weight * out["commit"]
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, "commit": out["commit"].item()}

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=_config_json(cfg, codec), title="small-music")
    if _finished(cfg):
        _finish(codec, cfg, "small-music")
    return rows


def encode_speech_codes(codec: SmallSpeechCodec, items: list[dict]) -> list[torch.Tensor]:
    """Every utterance -> its RVQ codes (T, n_q), frame-major as SoundStorm takes them."""
    return [codec.encode_rvq(item["wav"]).T.contiguous() for item in items]


def soundstorm_batch(codes: list[torch.Tensor], rng: np.random.Generator, gen: torch.Generator, batch: int,
                     max_frames: int, levels: int, mask_id: int):
    """One masked training batch: (semantic (B, N), acoustic input (B, N, Q), target (B, N), loss mask
    (B, N), level q). All B sequences are cropped to one length N (no padding inside the conformer)."""
    idx = rng.integers(len(codes), size=batch)
    N = min(max_frames, min(len(codes[i]) for i in idx))
    seqs = []
    for i in idx:
        start = int(rng.integers(len(codes[i]) - N + 1))
        seqs.append(codes[i][start : start + N])
    seq = torch.stack(seqs)  # (B, N, 1 + Q)
    q = int(rng.integers(levels))
    semantic, acoustic = seq[..., 0], seq[..., 1:].clone()
    target = acoustic[..., q].clone()
    prompt = torch.from_numpy(rng.integers(0, N // 2 + 1, size=batch))  # (B,) prompt frames, kept unmasked
    pos = torch.arange(N)[None]  # (1, N)
    after = pos >= prompt[:, None]  # (B, N): frames to generate
    # cosine schedule: a share cos(pi/2 u) of the frames to generate is masked, u ~ U(0, 1), at least one
    u = torch.rand(batch, generator=gen)
    n_mask = torch.clamp((torch.cos(math.pi / 2 * u) * (N - prompt)).ceil().long(), min=1)
    scores = torch.rand(batch, N, generator=gen).masked_fill(~after, 2.0)  # prompt frames sort last
    rank = scores.argsort(-1).argsort(-1)
    masked = (rank < n_mask[:, None]) & after  # (B, N)
    acoustic[..., q] = acoustic[..., q].masked_fill(masked, mask_id)
    acoustic[..., q + 1 :] = acoustic[..., q + 1 :].masked_fill(after[..., None], mask_id)
    return semantic, acoustic, target, masked, q


def train_soundstorm(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                     resume: bool = True, codes: list[torch.Tensor] | None = None,
                     codec: SmallSpeechCodec | None = None) -> list[dict]:
    if codec is None:
        if not isinstance(cfg.codec, str) or not cfg.codec:
            raise AnyGPTError("train soundstorm: --codec must name a trained small-speech export directory")
        codec = tc.load_codec_dir(cfg.codec)
    if codes is None:
        cache = Path(cfg.out) / "codes.pt"
        if cache.is_file():
            codes = torch.load(cache, weights_only=True)
        else:
            items = load_audio_items(world, "speech", cfg.split, cfg.max_items, codec.sample_rate)
            codes = encode_speech_codes(codec, items)
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            tc._atomic_save(codes, cache)
    model = codec.soundstorm
    c = model.config
    params, opt = _optimizer(model, cfg, (0.9, 0.98), weight_decay=0.01)
    spec = _spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        semantic, acoustic, target, masked, q = soundstorm_batch(
            codes, tc.step_rng(cfg.seed, s), tc.step_generator(cfg.seed, s), cfg.batch, cfg.max_frames,
            c.num_quantizers, c.mask_id)
        logits = model.net(acoustic, model.semantic_token_emb(semantic), level=q)  # (B, N, K)
        loss = F.cross_entropy(logits[masked], target[masked])
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        acc = (logits[masked].argmax(-1) == target[masked]).float().mean()
        return {"loss": loss.item(), "acc": acc.item(), "level": float(q)}

    rows = tc.train_loop(model, step, spec, optimizer=opt, config=_config_json(cfg, codec), title="small-soundstorm")
    if _finished(cfg):
        _finish(codec, cfg, "small-speech")
    return rows


RECIPES = {"image": train_image, "speech": train_speech, "music": train_music, "soundstorm": train_soundstorm}


# ---------------------------------------------------------------------------------------------
# Evaluation


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _snr(x: np.ndarray, y: np.ndarray) -> float:
    n = min(len(x), len(y))
    err = float(((x[:n] - y[:n]) ** 2).sum())
    return 10 * math.log10(float((x[:n] ** 2).sum()) / max(err, 1e-12))


def _mel_distance(x: np.ndarray, y: np.ndarray, sr: int) -> float:
    n = min(len(x), len(y))
    with torch.no_grad():
        return float(audio_losses(torch.from_numpy(x[:n])[None], torch.from_numpy(y[:n])[None], sr)["mel"])


def evaluate(kind: str, codec_dir: str | Path, world: str | Path, *, split: str = "validation", n: int = 32,
             out: str | Path | None = None) -> dict:
    """Metrics of a trained small codec on `n` world items of `split`; samples under `out`."""
    kind = "speech" if kind == "soundstorm" else kind
    codec = tc.load_codec_dir(codec_dir)
    t0 = time.perf_counter()
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        images = load_images(world, split, n)
        x = images.float() / 127.5 - 1
        with torch.no_grad():
            codes = codec.net.encode(x)
            y = codec.net.decode(codes).clamp(-1, 1)
        mse = F.mse_loss(y, x, reduction="none").mean((1, 2, 3))
        counts = torch.bincount(codes.flatten(), minlength=codec.codebook_size).float()
        p = counts / counts.sum()
        metrics = {"l1": float(F.l1_loss(y, x)), "psnr": float((10 * torch.log10(4 / mse)).mean()),
                   "codes_used": int((counts > 0).sum()), "perplexity": float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))}
        if out:
            grid = torch.cat([torch.cat(list(x[:8]), 2), torch.cat(list(y[:8]), 2)], 1)  # (3, 128, 512)
            tensor_to_image(grid).save(out / "image_reconstructions.png")
    else:
        world_kind = "music" if kind == "music" else "speech"
        items = load_audio_items(world, world_kind, split, n, codec.sample_rate)
        snr, mel, cer_e, cer_n, acc, mel_ss = [], [], 0, 0, [], []
        used = [set() for _ in range(codec.n_q)]
        for i, item in enumerate(items):
            codes = codec.encode_rvq(item["wav"])
            for q in range(codec.n_q):
                used[q].update(codes[q].tolist())
            y = codec.decode_rvq(codes)
            snr.append(_snr(item["wav"], y))
            mel.append(_mel_distance(item["wav"], y, codec.sample_rate))
            if kind == "speech":
                if codec.net.ctc is not None:
                    ref = " ".join(item["text"].lower().split())
                    cer_e += _edit_distance(codec.transcribe(item["wav"]), ref)
                    cer_n += len(ref)
                # SoundStorm: the first third (at most voice_max_seconds) is the prompt, the rest is filled
                P = min(codes.shape[1] // 3, int(codec.voice_max_seconds * codec.frame_rate))
                prompt = codes[:, :P].T[None]
                gen = torch.Generator().manual_seed(i)
                full = codec.soundstorm.generate(codes[:1, P:], prompt, schedule=codec.schedule, generator=gen)[0].T
                acc.append((full[1:] == codes[1:, P:]).float().mean(1).tolist())
                y_ss = codec.decode_rvq(torch.cat([codes[:, :P], full], 1))
                mel_ss.append(_mel_distance(item["wav"][P * codec.hop :], y_ss[P * codec.hop :], codec.sample_rate))
            if out and i < 4:
                import soundfile as sf

                sf.write(out / f"{kind}_{i}_input.wav", item["wav"], codec.sample_rate)
                sf.write(out / f"{kind}_{i}_rvq.wav", y, codec.sample_rate)
                if kind == "speech":
                    sf.write(out / f"{kind}_{i}_soundstorm.wav", y_ss, codec.sample_rate)
        metrics = {"snr_db": float(np.mean(snr)), "mel_l1": float(np.mean(mel)),
                   "codes_used_per_layer": [len(u) for u in used]}
        if kind == "speech":
            if cer_n:
                metrics["layer1_ctc_cer"] = cer_e / cer_n
            metrics["soundstorm_acc_per_level"] = np.mean(acc, 0).round(4).tolist()
            metrics["soundstorm_mel_l1"] = float(np.mean(mel_ss))
    metrics = {"kind": kind, "codec": str(codec_dir), "split": split, "items": n, **metrics,
               "seconds": round(time.perf_counter() - t0, 2)}
    if out:
        (out / f"eval_{kind}.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
