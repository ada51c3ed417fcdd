"""Reading and writing media files, with one-line errors that name the file and the problem.

Everything that enters a codec passes through here:

    load_image(path)                    -> PIL.Image, RGB
    load_audio(path, sample_rate)       -> float32 mono waveform (samples,) at sample_rate
    as_waveform(array, sample_rate)     -> the same checks for audio already in memory
    to_waveform(path | array | (array, rate), sample_rate) -> what audio codecs accept

Bad input (missing, unreadable, empty, silent, NaN) raises MediaError here rather than surfacing
later as a shape error or a silent garbage token sequence.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anygpt.errors import MediaError
from anygpt.outputs import write_file

SILENCE_PEAK = 1e-4  # below this peak |sample| a waveform is treated as silence (-80 dBFS)
PathLike = str | os.PathLike


def check_file(path: PathLike) -> Path:
    """The path of an existing regular file, or MediaError (cheap: callers check inputs before loading models)."""
    return _existing_file(path)


def _existing_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    return path


# ---------------------------------------------------------------------------------------------
# Images


def load_image(path: PathLike) -> Image.Image:
    """Read an image file into an RGB PIL image (transparent areas become white)."""
    path = _existing_file(path)
    return _read_image(path, str(path))


def image_from_bytes(data: bytes, *, source: str = "image") -> Image.Image:
    """The same for an image file's bytes (an upload): `source` names it in errors."""
    return _read_image(io.BytesIO(data), source)


def _read_image(src, source: str) -> Image.Image:
    try:
        with Image.open(src) as opened:
            opened.load()  # decode now: truncated files fail here, not in the codec
            image = ImageOps.exif_transpose(opened)  # phone photos store rotation in EXIF
    except UnidentifiedImageError:
        raise MediaError(f"{source}: not an image (unrecognised or empty file)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise MediaError(f"{source}: not a readable image ({e})") from None
    if image.width == 0 or image.height == 0:
        raise MediaError(f"{source}: image has zero size ({image.width}x{image.height})")
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (and 32-bit) grey: PIL's convert clips to 255, which turns most of a picture white;
        # scale to 8 bits instead (16-bit range for integers, the picture's own peak for floats)
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" else max(float(np.nanmax(values)) if values.size else 1.0, 1.0)
        grey = np.clip(np.nan_to_num(values) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Dropping alpha would expose whatever colour hides under transparent pixels; composite
        # onto white instead, as a viewer would show it.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def as_image(x: Any, *, source: str = "image") -> Image.Image:
    """What image codecs accept: a PIL image or an HxWx3 uint8 array -> a non-empty RGB PIL image."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise MediaError(f"{source}: expected an HxWx3 uint8 array, got {x.dtype} {x.shape}")
        x = Image.fromarray(x)
    if not isinstance(x, Image.Image):
        raise MediaError(f"{source}: expected a PIL image, got {type(x).__name__}")
    if x.width == 0 or x.height == 0:
        raise MediaError(f"{source}: image has zero size ({x.width}x{x.height})")
    return x.convert("RGB")


def save_image(image: Image.Image | np.ndarray, path: PathLike, *, existing: str = "replace") -> Path:
    """Write an image as PNG (an HxWx3 uint8 array is accepted too) through the safe writer
    (outputs.write_file: `existing` says what happens to a file of that name); returns the path."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise MediaError(f"{path}: expected a PIL image or uint8 array, got {type(image).__name__}")
    rgb = _to_rgb(image)
    return write_file(path, lambda f: rgb.save(f, format="PNG"), existing=existing)


# ---------------------------------------------------------------------------------------------
# Audio


def as_waveform(x: Any, sample_rate: int, *, source: str = "waveform") -> np.ndarray:
    """Check an in-memory waveform and return it as float32 mono (samples,).

    Accepts a numpy array or torch tensor, 1-D (samples,) or 2-D (channels, samples); channels are
    averaged. Integer PCM is scaled to [-1, 1]. `source` names the input in error messages.
    """
    if sample_rate <= 0:
        raise MediaError(f"{source}: sample rate must be positive, got {sample_rate}")
    if hasattr(x, "detach"):  # torch tensor; duck-typed so this module never imports torch
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x / float(np.iinfo(x.dtype).max)
    elif not np.issubdtype(x.dtype, np.floating):
        raise MediaError(f"{source}: expected a numeric waveform, got dtype {x.dtype}")
    if x.ndim == 2:
        if x.shape[0] > x.shape[1]:
            raise MediaError(
                f"{source}: expected (channels, samples), got shape {x.shape}; transpose it"
            )
        x = x.mean(axis=0)  # (samples,)
    elif x.ndim != 1:
        raise MediaError(f"{source}: expected a 1-D or (channels, samples) waveform, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise MediaError(f"{source}: audio is empty (0 samples)")
    if not np.isfinite(x).all():
        raise MediaError(f"{source}: audio contains NaN or infinite samples")
    peak = float(np.abs(x).max())
    if peak < SILENCE_PEAK:
        raise MediaError(f"{source}: audio is silent (peak {peak:.1e} < {SILENCE_PEAK:.0e})")
    return x


def load_audio(path: PathLike, sample_rate: int, *, max_seconds: float | None = None) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 into float32 mono (samples,) at `sample_rate`, cropped to `max_seconds`."""
    path = _existing_file(path)
    return _read_audio(path, str(path), sample_rate, max_seconds)


def audio_seconds(data: bytes) -> float:
    """The length of an audio file's bytes in seconds, from its header (SoundFileError if unreadable)."""
    import soundfile as sf

    return float(sf.info(io.BytesIO(data)).duration)


def audio_from_bytes(data: bytes, sample_rate: int, *, source: str = "audio",
                     max_seconds: float | None = None) -> np.ndarray:
    """The same for an audio file's bytes (an upload): `source` names it in errors."""
    return _read_audio(io.BytesIO(data), source, sample_rate, max_seconds)


def _read_audio(src, source: str, sample_rate: int, max_seconds: float | None) -> np.ndarray:
    import soundfile as sf

    if max_seconds is not None and not max_seconds > 0:
        raise MediaError(f"{source}: max_seconds must be positive, got {max_seconds}")
    try:
        data, file_rate = sf.read(src, dtype="float32", always_2d=True)  # (frames, channels)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as e:
        raise MediaError(f"{source}: not a readable audio file ({getattr(e, 'error_string', e)})") from None
    if max_seconds is not None:  # crop before resampling: no work on audio we would throw away
        data = data[: math.ceil(max_seconds * file_rate)]
    if len(data) == 0:
        raise MediaError(f"{source}: audio is empty (0 samples)")
    wav = as_waveform(data.mean(axis=1), file_rate, source=source)  # (samples,)
    return _resample_crop(wav, file_rate, sample_rate, max_seconds, source)


def _resample_crop(wav: np.ndarray, rate: int, sample_rate: int, max_seconds: float | None, source: str) -> np.ndarray:
    if rate != sample_rate:
        import soxr

        wav = soxr.resample(wav, rate, sample_rate).astype(np.float32)
    if max_seconds is not None:
        wav = wav[: max(1, round(max_seconds * sample_rate))]
    return as_waveform(wav, sample_rate, source=source)


def to_waveform(media: Any, sample_rate: int, *, source: str = "waveform",
                max_seconds: float | None = None) -> np.ndarray:
    """What audio codecs accept: a file path, a waveform already at `sample_rate`, or a
    (waveform, rate) pair -> float32 mono (samples,) at `sample_rate`, cropped to `max_seconds`."""
    if isinstance(media, (str, os.PathLike)):
        return load_audio(media, sample_rate, max_seconds=max_seconds)
    if isinstance(media, tuple) and len(media) == 2:
        wav, rate = media
        return _resample_crop(as_waveform(wav, int(rate), source=source), int(rate), sample_rate, max_seconds, source)
    return _resample_crop(as_waveform(media, sample_rate, source=source), sample_rate, sample_rate, max_seconds, source)


def save_audio(path: PathLike, wav: Any, sample_rate: int, *, existing: str = "replace") -> Path:
    """Write a mono waveform as 16-bit PCM WAV, clipped to [-1, 1], through the safe writer
    (outputs.write_file: `existing` says what happens to a file of that name); returns the path."""
    import soundfile as sf

    path = Path(path)
    clipped = _playable(wav, str(path))
    return write_file(path, lambda f: sf.write(f, clipped, sample_rate, subtype="PCM_16", format="WAV"),
                      existing=existing)


AUDIO_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"),
                 "pcm16": ("RAW", "PCM_16")}  # pcm16: raw little-endian 16-bit samples, no header


def audio_bytes(wav: Any, sample_rate: int, fmt: str = "wav") -> bytes:
    """A mono waveform as the bytes of an audio file of format `fmt` (one of AUDIO_FORMATS)."""
    import soundfile as sf

    if fmt not in AUDIO_FORMATS:
        raise MediaError(f"unknown audio format {fmt!r}; choose one of {', '.join(AUDIO_FORMATS)}")
    container, subtype = AUDIO_FORMATS[fmt]
    endian = "LITTLE" if fmt == "pcm16" else "FILE"
    buf = io.BytesIO()
    sf.write(buf, _playable(wav, "audio"), sample_rate, subtype=subtype, format=container, endian=endian)
    return buf.getvalue()


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    buf = io.BytesIO()
    as_image(image).save(buf, format="PNG")
    return buf.getvalue()


def _playable(wav: Any, source: str) -> np.ndarray:
    """A mono float32 waveform clipped to [-1, 1], or MediaError."""
    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise MediaError(f"{source}: expected a mono waveform (samples,), got shape {wav.shape}")
    if not np.isfinite(wav).all():
        raise MediaError(f"{source}: refusing to write audio with NaN or infinite samples")
    return np.clip(wav, -1.0, 1.0)
