"""What the music judge reads from music codes an LLM could write: the ceiling of text-to-music for
each way of writing a clip. Each test clip of a world is encoded with the bundle's music codec; some of
its layers are kept and the others rendered back by a lookup table, then decoded and judged:

    original    the clip itself
    all4        all four layers of its codes (the codec's ceiling)
    l1          layer 1 (instrument x pitch class); layers 2-4 of each frame from the table
    l1_onsets   the same with each run of layer 1 cut at the clip's onsets, so repeated notes stay apart
    l12_onsets  layers 1 and 2; layers 3-4 from the table

The table holds, for each (kept codes of a frame, frames since its note began), the most frequent
rendered codes over the training clips of another world (the frames counted from 0 at each change of
layer 1 or onset, capped at 47). Onsets: peaks of the positive spectral flux (log magnitudes, the
codec's hop) above `threshold` times its 9-frame moving mean plus a tenth of the clip's highest flux.

    python scripts/music_ceiling.py --table-world W --table-items 3000 [--world E] [--limit 50]

One torch thread is enough (about 3 min for 3000 table clips and 39 test clips). The numbers are in
docs/tiny.md.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from anygpt.bundles import load_bundle
from anygpt.eval.command import ensure_world
from anygpt.eval.judges.music import MusicJudge, music_attribute_accuracy
from anygpt.world import take_items

MAX_POSITION = 47
FLOOR = 0.1  # of the clip's highest flux
KEPT = {"l1": (1, False), "l1_onsets": (1, True), "l12_onsets": (2, True)}  # layers kept, cut at onsets


def onsets(wav: np.ndarray, frames: int, hop: int, threshold: float) -> np.ndarray:
    """(frames,) bool: the frames where a note begins, read off the waveform."""
    x = torch.as_tensor(wav, dtype=torch.float32)
    mag = torch.stft(x, 2048, hop, window=torch.hann_window(2048), return_complex=True).abs()[..., :frames]
    log = torch.log1p(100 * mag)
    flux = np.concatenate([[0.0], torch.relu(log[:, 1:] - log[:, :-1]).sum(0).numpy()])
    mean = np.convolve(flux, np.ones(9) / 9, mode="same")
    floor = FLOOR * flux.max() + 1e-6  # a pure tone's leakage ripples; an attack stands far above it
    return (flux > threshold * mean + floor) & (flux >= np.roll(flux, 1)) & (flux >= np.roll(flux, -1))


def positions(layer1: np.ndarray, cut: np.ndarray | None) -> np.ndarray:
    """Frames since the current note began: 0 where layer 1 changes (or at a cut), capped."""
    pos = np.zeros(len(layer1), dtype=int)
    for t in range(1, len(layer1)):
        new = layer1[t] != layer1[t - 1] or (cut is not None and cut[t])
        pos[t] = 0 if new else pos[t - 1] + 1
    return np.minimum(pos, MAX_POSITION)


class Clip:
    def __init__(self, codec, item: dict, threshold: float):
        if item["sample_rate"] != codec.sample_rate:
            raise SystemExit(f"{item['id']}: {item['sample_rate']} Hz, the codec reads {codec.sample_rate} Hz")
        self.codes = np.asarray(codec.encode_rvq((item["waveform"], item["sample_rate"])))  # (4, T)
        frames = self.codes.shape[1]
        cut = onsets(np.asarray(item["waveform"], np.float32), frames, codec.net.c.hop, threshold)
        self.pos = {False: positions(self.codes[0], None), True: positions(self.codes[0], cut)}

    def keys(self, kept: int, at_onsets: bool) -> list[tuple]:
        return [(*self.codes[:kept, t].tolist(), int(p)) for t, p in enumerate(self.pos[at_onsets])]


def build_tables(codec, items, threshold: float) -> dict[str, dict]:
    counts = {name: defaultdict(Counter) for name in KEPT}
    for item in items:
        clip = Clip(codec, item, threshold)
        for name, (kept, at_onsets) in KEPT.items():
            for t, key in enumerate(clip.keys(kept, at_onsets)):
                counts[name][key][tuple(clip.codes[kept:, t].tolist())] += 1
    return {name: {k: c.most_common(1)[0][0] for k, c in table.items()} for name, table in counts.items()}


def render(clip: Clip, table: dict, kept: int, at_onsets: bool) -> np.ndarray:
    rest = [table.get(key, (0,) * (4 - kept)) for key in clip.keys(kept, at_onsets)]
    return np.concatenate([clip.codes[:kept], np.asarray(rest, dtype=np.int64).T], 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default="tiny")
    ap.add_argument("--world", type=Path, default=None,
                    help="the world whose test clips are judged (default: the evaluation world, built if missing)")
    ap.add_argument("--table-world", type=Path, required=True, help="a world whose training clips fill the table")
    ap.add_argument("--table-items", type=int, default=3000)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--threshold", type=float, default=1.5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    codec = load_bundle(args.bundle).codec("music")
    tables = build_tables(codec, take_items(args.table_world, "music", "train", args.table_items), args.threshold)
    judge = MusicJudge.load()
    reads: dict[str, list] = defaultdict(list)
    truths, notes = [], {False: [], True: []}
    for item in take_items(ensure_world(args.world, ["music"]), "music", "test", args.limit):
        clip = Clip(codec, item, args.threshold)
        truths.append(item["attributes"])
        for at_onsets, pos in clip.pos.items():
            notes[at_onsets].append(int((pos == 0).sum()))
        reads["original"].append(judge.attributes([item["waveform"]], item["sample_rate"])[0])
        variants = {"all4": clip.codes} | {name: render(clip, tables[name], *KEPT[name]) for name in KEPT}
        for name, codes in variants.items():
            with torch.no_grad():
                wav = codec.net.decode(torch.as_tensor(codes)[None], seed=0)[0].numpy()
            reads[name].append(judge.attributes([wav], codec.sample_rate)[0])
    out = {}
    for name, r in reads.items():
        acc = music_attribute_accuracy(r, truths)
        out[name] = {"attr_acc": round(float(np.mean(list(acc.values()))), 3),
                     "per_attribute": {k: round(v, 3) for k, v in acc.items()}}
    print(json.dumps({"clips": len(truths), "table_clips": args.table_items, "threshold": args.threshold,
                      "runs_per_clip": float(np.mean(notes[False])), "notes_per_clip": float(np.mean(notes[True])),
                      **out}))


if __name__ == "__main__":
    main()
