"""One training recipe per small codec, and their evaluation, on the offline world (`anygpt codecs train`).

    train_image(world, TrainConfig)       world images -> small-image
    train_speech(world, TrainConfig)      world speech (+ flite's phone alignments for layer 1) -> small-speech
    train_music(world, TrainConfig)       world music, random crops -> small-music (units "tonal": + the
                                          world's instrument of each clip for layer 1's head)
    train_soundstorm(world, TrainConfig)  a trained small-speech (cfg.codec) -> its SoundStorm trained
    train_voice(world, TrainConfig)       a trained phone-unit small-speech (cfg.codec) -> its voice renderer
    train_durations(world, TrainConfig)   a phone-unit small-speech (cfg.codec) -> runs "merged" and the
                                          duration head that gives each merged code its frames back
    evaluate(kind, codec_dir, world)      reconstruction, code usage, layer-1 phone accuracy, SoundStorm
                                          accuracy (`anygpt eval codecs --codec DIR --kind KIND`)

Every recipe writes OUT/ as described in loop.py and exports OUT/export/ (codec.json +
weights.safetensors), which `load_codec_dir` or a bundle's CodecSlot loads through the registry.

SoundStorm is trained as in the SoundStorm paper: for each step one level q is drawn (low levels
more often, weights (levels - q)^2); a random
prefix of every sequence (the prompt) stays unmasked at every level; levels below q are given,
level q is masked on a cosine-scheduled share of the remaining frames, levels above q are masked
everywhere (as `SoundStorm.generate` sees them); the loss is cross-entropy on level q's masked codes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.codecs.small.audio import (
    PHONES,
    SmallMusicCodec,
    SmallSpeechCodec,
    mel_distance,
    mel_power_loss,
    spectral_loss,
)
from anygpt.codecs.small.image import (
    SmallImageCodec,
    image_losses,
    tensor_to_image,
)
from anygpt.codecs.small.voice import merge_runs
from anygpt.errors import AnyGPTError
from anygpt.train.checkpoint import atomic_write
from anygpt.train.codecs import loop as tc
from anygpt.train.codecs.config import (
    CODEC_NAMES,
    KINDS,
    MODALITY,
    TrainConfig,
    adamw,
    default_config,
    export_run,
    finished,
    loop_spec,
    run_config,
)
from anygpt.train.codecs.export import CODEC_JSON, WEIGHTS, load_codec_dir
from anygpt.train.codecs.scene import train_scene
from anygpt.world import iter_items, kind_of, music_table, phone_alignment

# ---------------------------------------------------------------------------------------------
# Data: the world read once into memory; step s's batch is drawn from a generator seeded by (seed, s)


def load_images(world: str | Path, split: str, max_items: int | None) -> torch.Tensor:
    """World images -> uint8 (N, 3, 64, 64)."""
    out = []
    for item in iter_items(world, "images", split):
        out.append(torch.from_numpy(np.array(item["image"].convert("RGB"), dtype=np.uint8)).permute(2, 0, 1))
        if max_items and len(out) >= max_items:
            break
    if not out:
        raise AnyGPTError(f"{world}: no images in split {split!r}")
    return torch.stack(out)


def load_audio_items(world: str | Path, kind: str, split: str, max_items: int | None, sample_rate: int) -> list[dict]:
    """World speech or music -> [{"wav": float32 (L,), "text", "speaker", "rate": speaking-rate word,
    "instrument": music's instrument name}]."""
    out = []
    for item in iter_items(world, kind, split):
        if item["sample_rate"] != sample_rate:
            import soxr

            item["waveform"] = soxr.resample(item["waveform"], item["sample_rate"], sample_rate).astype(np.float32)
        attributes = item.get("attributes") or {}
        if isinstance(attributes, str):
            attributes = json.loads(attributes)
        out.append({"wav": item["waveform"].astype(np.float32), "text": item.get("text", ""),
                    "speaker": item.get("speaker", ""), "rate": attributes.get("rate", "normal"),
                    "instrument": attributes.get("instrument", "")})
        if max_items and len(out) >= max_items:
            break
    if not out:
        raise AnyGPTError(f"{world}: no {kind} in split {split!r}")
    return out


def phone_labels(item: dict, frames: int, frame_rate: float) -> torch.Tensor:
    """The phone (index in PHONES) at the centre of each of `frames` code frames of a world utterance,
    from flite's alignment of its sentence in its voice: (frames,) long."""
    ends, names = [], []
    for phone, end in phone_alignment(item["text"], item["speaker"], item["rate"]):
        names.append(PHONES.index(phone) if phone in PHONES else 0)
        ends.append(end)
    centres = (np.arange(frames) + 0.5) / frame_rate
    idx = np.minimum(np.searchsorted(np.asarray(ends), centres), len(names) - 1)
    return torch.tensor(np.asarray(names)[idx], dtype=torch.long)


def attach_phone_labels(items: list[dict], hop: int, frame_rate: float, cache: Path | None = None) -> None:
    """Adds "phones" (frames,) to every item (flite alignments; read from / written to `cache`)."""
    if cache is not None and cache.is_file():
        labels = torch.load(cache, weights_only=True)
    else:
        labels = [phone_labels(it, math.ceil(len(it["wav"]) / hop), frame_rate) for it in items]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda tmp: torch.save(labels, tmp))
    for item, lab in zip(items, labels, strict=True):
        item["phones"] = lab


def attach_instrument_labels(items: list[dict], instruments: tuple[str, ...] | list[str], hop: int) -> None:
    """Adds "labels" (frames,) to every music item: the index of its instrument in `instruments` at
    every frame (-1 for an instrument not listed)."""
    for item in items:
        index = list(instruments).index(item["instrument"]) if item["instrument"] in instruments else -1
        item["labels"] = torch.full((math.ceil(len(item["wav"]) / hop),), index, dtype=torch.long)


def crop_batch(items: list[dict], rng: np.random.Generator, batch: int, frames: int, hop: int,
               key: str = "phones"):
    """B random crops of `frames` code frames, starting on a frame (shorter clips zero-padded).
    Returns wav (B, frames * hop), real frames (B,), the items' frame labels `key` (B, frames)
    (-1: padding or none)."""
    x = torch.zeros(batch, frames * hop)
    labels = torch.full((batch, frames), -1, dtype=torch.long)
    real = torch.zeros(batch, dtype=torch.long)
    for b, i in enumerate(rng.integers(len(items), size=batch)):
        w = items[i]["wav"]
        total = math.ceil(len(w) / hop)
        start = int(rng.integers(max(1, total - frames + 1)))
        seg = w[start * hop : (start + frames) * hop]
        x[b, : len(seg)] = torch.from_numpy(seg)
        real[b] = n = math.ceil(len(seg) / hop)
        if key in items[i]:
            labels[b, :n] = items[i][key][start : start + n]
    return x, real, labels


# ---------------------------------------------------------------------------------------------
# Recipes


def train_image(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, images: torch.Tensor | None = None) -> list[dict]:
    codec = SmallImageCodec(**dict(cfg.codec))
    data = images if images is not None else load_images(world, cfg.split, cfg.max_items)  # (N, 3, 64, 64) uint8
    net = codec.net
    params, opt = adamw(net, cfg, (0.9, 0.99))
    spec = loop_spec(cfg, stop_after, progress, resume)

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

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=run_config(cfg, codec), title="small-image")
    if finished(cfg):
        export_run(codec, cfg, "small-image")
    return rows


def _load_fitting(net, export: str | Path) -> None:
    """Load a trained audio export's network weights wherever they fit (names and shapes)."""
    from safetensors.torch import load_file

    trained = load_file(str(Path(export) / WEIGHTS))
    own = net.state_dict()
    fitting = {k[len("net."):]: v.float() for k, v in trained.items()
               if k.startswith("net.") and k[len("net."):] in own and own[k[len("net."):]].shape == v.shape}
    net.load_state_dict(fitting, strict=False)


def _freeze_layer_one(net, export: str | Path) -> None:
    """Load a trained speech export's weights wherever they fit and freeze what chooses layer 1 (content
    encoder, its codebook, the phone head) and the feature statistics: layer-1 codes stay exactly the
    export's, so token data made with it stays valid, while the acoustic layers are trained anew."""
    _load_fitting(net, export)
    for module in (net.content, net.content_vq, net.content_head):
        if module is not None:
            module.requires_grad_(False)


def _freeze_codes(net, export: str | Path) -> None:
    """Load a trained music export and freeze all but the decoder: every code of every clip stays the
    export's (token data made with it stay valid), while the decoder learns to sound them better."""
    _load_fitting(net, export)
    net.requires_grad_(False)
    net.decoder.requires_grad_(True)


def _audio_recipe(codec, cfg: TrainConfig, data: list[dict], stop_after, progress, resume, title: str) -> list[dict]:
    """The speech and music recipe: random crops, spectral loss (+ the phone loss of layer 1 for speech,
    the instrument loss of layer 1's head for tonal music)."""
    net = codec.net
    frames = max(1, round(cfg.crop_seconds * codec.frame_rate))
    frozen = bool(cfg.init_from)
    decoder_only = frozen and net.content is None  # music: the codes are kept, the decoder trains
    if decoder_only:
        _freeze_codes(net, cfg.init_from)
    elif frozen:
        _freeze_layer_one(net, cfg.init_from)
    else:
        net.set_statistics([torch.from_numpy(it["wav"]) for it in data[:256]])  # a checkpoint overrides these
    params, opt = adamw(net, cfg, (0.9, 0.99))
    spec = loop_spec(cfg, stop_after, progress, resume)
    label_key, name = ("labels", "instrument") if net.tonal is not None else ("phones", "phone")

    def step(s: int, lr: float) -> dict[str, float]:
        if frozen and net.content_vq is not None:  # no EMA updates or restarts of the layer-1 codebook
            net.content_vq.eval()
        if decoder_only:  # nor of the other codebooks
            net.rvq.eval()
        x, real, labels = crop_batch(data, tc.step_rng(cfg.seed, s), cfg.batch, frames, codec.hop, label_key)
        out = net(x, tc.step_generator(cfg.seed, s), quantize=s >= cfg.vq_warmup)
        rec = spectral_loss(out["pred"], out["target"], real)
        loss = rec + cfg.commit_weight * out["commit"]
        metrics = {"spectral": rec.item(), "commit": out["commit"].item()}
        if cfg.mel_weight:
            mel = mel_power_loss(net, out["pred"], out["target"], real)
            loss = loss + cfg.mel_weight * mel
            metrics["mel"] = mel.item()
        if out["content_logits"] is not None and cfg.content_weight and bool((labels >= 0).any()):
            logits = out["content_logits"]  # (B, classes, T)
            content = F.cross_entropy(logits, labels, ignore_index=-1)
            loss = loss + cfg.content_weight * content
            keep = labels >= 0
            metrics[f"{name}_ce"] = content.item()
            metrics[f"{name}_acc"] = (logits.argmax(1)[keep] == labels[keep]).float().mean().item()
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        used = out["codes"][:, 0].unique().numel() / codec.codebook_size
        return {"loss": loss.item(), **metrics, "layer1_used": used}

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=run_config(cfg, codec), title=title)
    if finished(cfg):
        export_run(codec, cfg, title)
    return rows


def train_speech(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                 resume: bool = True, items: list[dict] | None = None) -> list[dict]:
    codec = SmallSpeechCodec(**dict(cfg.codec))  # its SoundStorm is trained afterwards (train_soundstorm)
    if items is None:
        items = load_audio_items(world, "speech", cfg.split, cfg.max_items, codec.sample_rate)
        attach_phone_labels(items, codec.hop, codec.frame_rate, Path(cfg.out) / "phones.pt")
    return _audio_recipe(codec, cfg, items, stop_after, progress, resume, "small-speech")


def train_music(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, items: list[dict] | None = None) -> list[dict]:
    options = dict(cfg.codec)
    if cfg.init_from:  # the export's codec, its constructor arguments overridden by --set
        manifest = json.loads((Path(cfg.init_from) / CODEC_JSON).read_text(encoding="utf-8"))
        options = {**manifest["config"], **options}
    if options.get("units") == "tonal" and not options.get("instruments"):  # the world's instruments, in its order
        options["instruments"] = [i["name"] for i in music_table()["instruments"]]
    codec = SmallMusicCodec(**options)
    if items is None:
        items = load_audio_items(world, "music", cfg.split, cfg.max_items, codec.sample_rate)
    if codec.net.tonal is not None and not all("labels" in item for item in items):
        attach_instrument_labels(items, codec.cfg.instruments, codec.hop)
    return _audio_recipe(codec, cfg, items, stop_after, progress, resume, "small-music")


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
    # lower levels are drawn more often (weights (levels - q)^2): they carry the voice, and every
    # level above is generated from them
    weights = (levels - np.arange(levels)) ** 2
    q = int(rng.choice(levels, p=weights / weights.sum()))
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
    codec = codec or _trained_speech(cfg, "soundstorm")
    if codes is None:
        codes = _speech_cache(world, cfg, codec, "codes.pt", encode_speech_codes)
    model = codec.soundstorm
    c = model.config
    params, opt = adamw(model, cfg, (0.9, 0.98), weight_decay=0.01)
    spec = loop_spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        semantic, acoustic, target, masked, q = soundstorm_batch(
            codes, tc.step_rng(cfg.seed, s), tc.step_generator(cfg.seed, s), cfg.batch, cfg.max_frames,
            c.num_quantizers, c.mask_id)
        logits = model.net(acoustic, model.semantic_token_emb(semantic), level=q)  # (B, N, K)
        loss = F.cross_entropy(logits[masked], target[masked])
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        acc = (logits[masked].argmax(-1) == target[masked]).float().mean()
        return {"loss": loss.item(), "acc": acc.item(), "level": float(q)}

    rows = tc.train_loop(model, step, spec, optimizer=opt, config=run_config(cfg, codec), title="small-soundstorm")
    if finished(cfg):
        export_run(codec, cfg, "small-speech")
    return rows


def _speech_cache(world, cfg: TrainConfig, codec: SmallSpeechCodec, name: str, make):
    """make(codec, world speech items) computed once and kept in OUT/name (a rerun reads it back)."""
    cache = Path(cfg.out) / name
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    out = make(codec, load_audio_items(world, "speech", cfg.split, cfg.max_items, codec.sample_rate))
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    atomic_write(cache, lambda tmp: torch.save(out, tmp))
    return out


def _trained_speech(cfg: TrainConfig, kind: str) -> SmallSpeechCodec:
    if not isinstance(cfg.codec, str) or not cfg.codec:
        raise AnyGPTError(f"train {kind}: --codec must name a trained small-speech export directory")
    return load_codec_dir(cfg.codec)


@torch.no_grad()
def voice_data(codec: SmallSpeechCodec, items: list[dict]) -> list[dict]:
    """Every utterance -> {"feats" (dims, T) float16, "phones" (T,) layer 1, "latent" (T, D), "speaker"}."""
    net, out = codec.net, []
    for item in items:
        x = F.pad(torch.from_numpy(item["wav"]), (0, -len(item["wav"]) % codec.hop))[None]
        feats = net.features(x)
        out.append({"feats": feats[0].half(), "phones": net.layer_one(feats)[0],
                    "latent": net._latent(net.encoder, feats)[0], "speaker": item["speaker"]})
    return out


def voice_batch(data: list[dict], by_speaker: dict[str, list[int]], rng: np.random.Generator, batch: int,
                max_frames: int, prompt_frames: int, no_voice: float = 0.1):
    """B crops of one length N (phones (B, N), latent (B, N, D), feats (B, dims, N)) and, for each, a
    voice: up to `prompt_frames` of another utterance of its speaker (feats (B, dims, P), real frames
    (B,); 0 frames: no voice, a share `no_voice` of the rows)."""
    idx = rng.integers(len(data), size=batch)
    N = min(max_frames, min(len(data[i]["phones"]) for i in idx))
    phones, latent, feats, voices, lengths = [], [], [], [], []
    for i in idx:
        d = data[i]
        start = int(rng.integers(len(d["phones"]) - N + 1))
        phones.append(d["phones"][start : start + N])
        latent.append(d["latent"][start : start + N])
        feats.append(d["feats"][:, start : start + N].float())
        same = [j for j in by_speaker[d["speaker"]] if j != i] or [int(i)]
        v = data[same[int(rng.integers(len(same)))]]["feats"]
        n = min(prompt_frames, v.shape[1])
        s0 = int(rng.integers(v.shape[1] - n + 1))
        voice = torch.zeros(v.shape[0], prompt_frames)
        voice[:, :n] = v[:, s0 : s0 + n].float()
        voices.append(voice)
        lengths.append(0 if rng.random() < no_voice else n)
    return (torch.stack(phones), torch.stack(latent), torch.stack(feats), torch.stack(voices),
            torch.tensor(lengths))


def speaker_vectors(renderer, voices: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The renderer's speaker vector of each voice (B, S); rows without a voice (0 frames) get the average one."""
    speaker = renderer.speaker_vector(voices, lengths)
    return torch.where((lengths > 0)[:, None], speaker, renderer.speaker_vector(None, batch=len(lengths)))


def voice_batches(world, cfg: TrainConfig, codec: SmallSpeechCodec, data: list[dict] | None):
    """What the voice renderer's and the duration head's trainings share: step s -> voice_batch of the
    world's utterances (`data`, or read once and kept in OUT/voice_data.pt), seeded by (seed, s)."""
    if data is None:
        data = _speech_cache(world, cfg, codec, "voice_data.pt", voice_data)
    by_speaker: dict[str, list[int]] = {}
    for i, d in enumerate(data):
        by_speaker.setdefault(d["speaker"], []).append(i)
    prompt_frames = int((codec.voice_max_seconds or 3.0) * codec.frame_rate)
    return lambda s: voice_batch(data, by_speaker, tc.step_rng(cfg.seed, s), cfg.batch, cfg.max_frames, prompt_frames)


def train_voice(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, data: list[dict] | None = None,
                codec: SmallSpeechCodec | None = None) -> list[dict]:
    """The voice renderer of a phone-unit small-speech, on its frozen encoder, layer 1 and decoder."""
    codec = codec or _trained_speech(cfg, "voice")
    if codec.renderer is None:
        raise AnyGPTError("train voice: the codec's layer 1 must be phone units (--set units=phones)")
    batches = voice_batches(world, cfg, codec, data)
    net, model = codec.net, codec.renderer
    net.requires_grad_(False)
    params, opt = adamw(model, cfg, (0.9, 0.99))
    spec = loop_spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        phones, latent, feats, voices, lengths = batches(s)
        speaker = speaker_vectors(model, voices, lengths)
        z = model(phones, speaker)
        mse = F.mse_loss(z, latent)
        spectral = spectral_loss(net.predict(z), feats)
        loss = mse + spectral
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        return {"loss": loss.item(), "latent_mse": mse.item(), "spectral": spectral.item()}

    rows = tc.train_loop(model, step, spec, optimizer=opt, config=run_config(cfg, codec), title="small-voice")
    if finished(cfg):
        export_run(codec, cfg, "small-speech")
    return rows


def with_durations(codec: SmallSpeechCodec) -> SmallSpeechCodec:
    """A phone-unit small-speech -> the same codec with runs "merged" and an untrained duration head
    (one that has them already, as it is)."""
    if codec.durations is not None:
        return codec
    if codec.renderer is None:
        raise AnyGPTError("train durations: the codec's layer 1 must be phone units with a voice renderer")
    merged = SmallSpeechCodec(**{**codec.config(), "runs": "merged"})
    fit = merged.load_state_dict(codec.state_dict(), strict=False)
    if fit.unexpected_keys or any(not k.startswith("durations.") for k in fit.missing_keys):
        raise AnyGPTError(f"train durations: the codec's weights do not fit its merged form ({fit})")
    return merged.eval()


def duration_batch(phones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crops of frame phones (B, N) -> their runs (B, R) padded with the pause, each run's log length
    (B, R), and a mask (B, R) of the runs whose length is known: not the first or last of a crop, which
    the crop may have cut."""
    runs = [merge_runs(row[None]) for row in phones]
    R = max(len(lengths) for _, lengths in runs)
    ids, target, mask = torch.zeros(len(runs), R, dtype=torch.long), torch.zeros(len(runs), R), torch.zeros(len(runs), R)
    for b, (merged, lengths) in enumerate(runs):
        ids[b, : len(lengths)] = merged[0]
        target[b, : len(lengths)] = lengths.float().log()
        mask[b, 1 : len(lengths) - 1] = 1
    return ids, target, mask


def train_durations(world: str | Path, cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True,
                    resume: bool = True, data: list[dict] | None = None,
                    codec: SmallSpeechCodec | None = None) -> list[dict]:
    """The duration head of a phone-unit small-speech (runs "merged"): the length of each run of its
    own layer 1 on the world's speech, given the phones around it and the speaker's voice (another
    utterance of the same speaker, as the voice renderer is trained); log frames, squared error. The
    rest of the codec is frozen."""
    codec = with_durations(codec or _trained_speech(cfg, "durations"))
    batches = voice_batches(world, cfg, codec, data)
    codec.requires_grad_(False)
    model = codec.durations
    model.requires_grad_(True)
    params, opt = adamw(model, cfg, (0.9, 0.99))
    spec = loop_spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        phones, _, _, voices, lengths = batches(s)
        with torch.no_grad():
            speaker = speaker_vectors(codec.renderer, voices, lengths)
        ids, target, mask = duration_batch(phones)
        pred = model(ids, speaker)
        loss = ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        frames_error = ((pred.detach().exp().round() - target.exp()).abs() * mask).sum() / mask.sum().clamp_min(1)
        return {"loss": loss.item(), "frames_error": frames_error.item()}

    rows = tc.train_loop(model, step, spec, optimizer=opt, config=run_config(cfg, codec), title="small-durations")
    if finished(cfg):
        export_run(codec, cfg, "small-speech")
    return rows


RECIPES = {"image": train_image, "scene": train_scene, "speech": train_speech, "music": train_music,
           "soundstorm": train_soundstorm, "voice": train_voice, "durations": train_durations}


# ---------------------------------------------------------------------------------------------
# Evaluation


def _snr(x: np.ndarray, y: np.ndarray) -> float:
    n = min(len(x), len(y))
    err = float(((x[:n] - y[:n]) ** 2).sum())
    return 10 * math.log10(float((x[:n] ** 2).sum()) / max(err, 1e-12))


def evaluate(kind: str, codec_dir: str | Path, world: str | Path, *, split: str = "validation", n: int = 32,
             out: str | Path | None = None) -> dict:
    """A trained small codec's reconstructions of `n` world items of `split` (`anygpt eval codecs --codec`):
    {"kind", "codec", "split", "items", "seconds", "reconstruction": {figures}}, the figures being
    image: l1, psnr, codes_used, perplexity; speech, music: snr_db, mel_l1, codes_used_per_layer; speech
    also layer1_phone_acc, layer1_mean_run_frames and, with SoundStorm, soundstorm_acc_per_level and
    soundstorm_mel_l1. `out`: that object as eval_<kind>.json, and sample reconstructions."""
    kind = "speech" if kind == "soundstorm" else kind
    codec = load_codec_dir(codec_dir)
    t0 = time.perf_counter()
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if kind in ("image", "scene"):
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
        items = load_audio_items(world, kind_of(MODALITY[kind]), split, n, codec.sample_rate)
        if kind == "speech":
            attach_phone_labels(items, codec.hop, codec.frame_rate)
        snr, mel, phone_hits, phone_n, acc, mel_ss, runs = [], [], 0, 0, [], [], []
        used = [set() for _ in range(codec.n_q)]
        for i, item in enumerate(items):
            codes = codec.encode_rvq(item["wav"])
            for q in range(codec.n_q):
                used[q].update(codes[q].tolist())
            y = codec.decode_rvq(codes)
            snr.append(_snr(item["wav"], y))
            mel.append(mel_distance(item["wav"], y, codec.sample_rate))
            if kind == "speech":
                with torch.no_grad():  # the content head on layer 1 alone, against flite's alignment
                    guess = codec.net.phone_logits(codes[:1])[0].argmax(0)
                phone_hits += int((guess == item["phones"][: len(guess)]).sum())
                phone_n += len(guess)
                first = codes[0]  # what the LLM sees: how long a code holds
                runs.append(len(first) / (int((first[1:] != first[:-1]).sum()) + 1))
                if codec.soundstorm is not None:
                    # SoundStorm: the first third (at most voice_max_seconds) is the prompt, the rest is filled
                    P = min(codes.shape[1] // 3, int(codec.voice_max_seconds * codec.frame_rate))
                    prompt = codes[:, :P].T[None]
                    gen = torch.Generator().manual_seed(i)
                    full = codec.soundstorm.generate(codes[:1, P:], prompt, schedule=codec.schedule, generator=gen)[0].T
                    acc.append((full[1:] == codes[1:, P:]).float().mean(1).tolist())
                    y_ss = codec.decode_rvq(torch.cat([codes[:, :P], full], 1))
                    mel_ss.append(mel_distance(item["wav"][P * codec.hop :], y_ss[P * codec.hop :], codec.sample_rate))
            if out and i < 4:
                import soundfile as sf

                sf.write(out / f"{kind}_{i}_input.wav", item["wav"], codec.sample_rate)
                sf.write(out / f"{kind}_{i}_rvq.wav", y, codec.sample_rate)
                if kind == "speech" and codec.soundstorm is not None:
                    sf.write(out / f"{kind}_{i}_soundstorm.wav", y_ss, codec.sample_rate)
        metrics = {"snr_db": float(np.mean(snr)), "mel_l1": float(np.mean(mel)),
                   "codes_used_per_layer": [len(u) for u in used]}
        if kind == "speech":
            metrics["layer1_phone_acc"] = phone_hits / max(phone_n, 1)
            metrics["layer1_mean_run_frames"] = float(np.mean(runs))
            if acc:
                metrics["soundstorm_acc_per_level"] = np.mean(acc, 0).round(4).tolist()
                metrics["soundstorm_mel_l1"] = float(np.mean(mel_ss))
    metrics = {"kind": kind, "codec": str(codec_dir), "split": split, "items": n,
               "seconds": round(time.perf_counter() - t0, 2), "reconstruction": metrics}
    if out:
        (out / f"eval_{kind}.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
