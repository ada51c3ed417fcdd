"""Write the server's stored prompt voices (anygpt/serve/voices/): one short clip per voice of the world.

    python scripts/make_voices.py [--out anygpt/serve/voices]

Each clip is a fixed sentence spoken by one of the offline world's flite speakers, 16 kHz mono FLAC;
voices.json names them and maps OpenAI's voice names onto them (so existing clients work). flite
renders deterministically: a rerun writes the same samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from anygpt.world import speech_rate, synthesize

SENTENCE = "the small brown dog runs across the green field near the old house"
VOICES = {  # stored name -> world speaker
    "kal": "kal", "slt": "slt", "awb": "awb", "rms": "rms", "slt_high": "slt_high", "rms_deep": "rms_deep",
}
# OpenAI's voice names -> stored voices (female-sounding names onto slt, the others onto the men)
ALIASES = {"alloy": "slt", "nova": "slt_high", "shimmer": "slt_high", "coral": "slt", "sage": "slt",
           "echo": "kal", "fable": "awb", "onyx": "rms_deep", "ash": "rms", "ballad": "awb", "verse": "kal",
           "marin": "slt", "cedar": "rms"}
SECONDS = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "anygpt/serve/voices"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rate = speech_rate()
    for name, speaker in VOICES.items():
        wav = synthesize(SENTENCE, speaker)[: int(SECONDS * rate)]
        sf.write(out / f"{name}.flac", np.asarray(wav, dtype=np.float32), rate, subtype="PCM_16", format="FLAC")
    table = {"_doc": "Stored prompt voices of `anygpt serve` (scripts/make_voices.py writes them): name -> file, "
                     "and OpenAI's voice names -> stored names.",
             "default": "slt", "voices": {name: f"{name}.flac" for name in VOICES}, "aliases": ALIASES}
    (out / "voices.json").write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {len(VOICES)} voices to {out}")


if __name__ == "__main__":
    main()
