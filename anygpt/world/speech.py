"""Speech from flite voices, 16 kHz mono, with more speakers made by scaling the vocal tract.

A speaker (voices.json) is a flite voice plus an optional formant scale k and mean pitch. Scaling by
k: synthesise k times slower, then resample as if the audio had been recorded at k * rate. Pitch and
formants rise by k together (a shorter vocal tract) and the duration comes back to normal, so the
variant sounds like another person rather than the same one speeded up.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from anygpt.world import pngwav, tables
from anygpt.errors import AnyGPTError

PEAK = 0.9  # normalised peak amplitude: loud enough, never clipping after resampling


def voice_table() -> dict:
    return tables.load("voices")


def sample_rate() -> int:
    return int(voice_table()["sample_rate"])


def speakers() -> list[dict]:
    return voice_table()["speakers"]


def speaker(speaker_id: str) -> dict:
    for entry in speakers():
        if entry["id"] == speaker_id:
            return entry
    raise KeyError(speaker_id)


def rates() -> dict[str, float]:
    return voice_table()["rates"]


def check_tools() -> None:
    """Raise AnyGPTError unless flite and every voice the speaker table uses are available."""
    if shutil.which("flite") is None:
        raise AnyGPTError("flite is not installed: install it with `apt-get install flite`")
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    missing = sorted({s["voice"] for s in speakers()} - set(listed.replace(":", " ").split()))
    if missing:
        raise AnyGPTError(f"flite lacks the voices {missing}: install Debian's `flite` 2.2 or newer")


def _flite_command(speaker_id: str, rate: str) -> tuple[list[str], float]:
    """The flite command line of a speaker at a rate, and the speaker's formant scale."""
    entry = speaker(speaker_id)
    scale = float(entry["formant_scale"])
    stretch = rates()[rate] * scale  # the resampling in synthesize shortens the audio by 1/scale
    command = ["flite", "-voice", entry["voice"], "--setf", f"duration_stretch={stretch:.4f}"]
    if entry["pitch_hz"] is not None:
        command += ["--setf", f"int_f0_target_mean={entry['pitch_hz']}"]
    return command, scale


def phone_alignment(text: str, speaker_id: str, rate: str = "normal") -> list[tuple[str, float]]:
    """The phones flite speaks for `text` in synthesize(text, speaker_id, rate), each with its end
    time in seconds of that audio: [("pau", 0.215), ("ax", 0.262), ...]."""
    command, scale = _flite_command(speaker_id, rate)
    result = subprocess.run(command + ["-psdur", "-t", text, "none"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AnyGPTError(f"flite failed on {text!r}: {result.stderr.strip()[:200]}")
    out = []
    for field in result.stdout.split():
        phone, _, end = field.rpartition(":")
        out.append((phone, float(end) / scale))
    return out


def synthesize(text: str, speaker_id: str, rate: str = "normal") -> np.ndarray:
    """Speak `text` -> float32 samples (T,) at sample_rate(), peak-normalised."""
    command, scale = _flite_command(speaker_id, rate)
    with tempfile.TemporaryDirectory(prefix="anygpt-flite-") as folder:
        path = Path(folder) / "speech.wav"
        result = subprocess.run(command + ["-t", text, "-o", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not path.exists():
            raise AnyGPTError(f"flite failed on {text!r}: {result.stderr.strip()[:200]}")
        samples, voice_rate = pngwav.decode_wav(path.read_bytes())
    samples = _resample(samples.astype(np.float64), voice_rate * scale, sample_rate())
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 0:
        samples = samples * (PEAK / peak)
    return samples.astype(np.float32)


def _resample(samples: np.ndarray, from_rate: float, to_rate: int) -> np.ndarray:
    if abs(from_rate - to_rate) < 1e-6:
        return samples
    import soxr  # only needed here; deterministic, high quality

    return soxr.resample(samples, from_rate, to_rate, quality="HQ")


def describe(speaker_id: str, rate: str) -> str:
    """'a slow female voice with an American accent': for captions and conversation requests."""
    entry = speaker(speaker_id)
    pace = "" if rate == "normal" else f"{rate} "
    sex = {"child": "child's", "male": "male", "female": "female"}[entry["sex"]]
    return f"a {pace}{sex} voice with {'an' if entry['accent'][0] in 'AEIOU' else 'a'} {entry['accent']} accent"
