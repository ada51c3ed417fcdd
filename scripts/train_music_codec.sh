#!/usr/bin/env bash
# small-music v2 (docs/music-codec.md) in one command: the music worlds, the tonal codec, its decoder
# trained again on the frozen codes, a codecs-only bundle with the tiny bundle's image and speech codecs
# beside it, the codec gate and the layer-1 probe on the evaluation world (n=400 seed 0). Rerun to
# resume. The tiny bundle is not changed: its LLM's music tokens are the shipped codec's until the LLM
# is trained again. Usage: bash scripts/train_music_codec.sh [RUNS_DIR]   (default runs/codecs)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/codecs}
[ -x .venv/bin/anygpt ] || bash scripts/setup.sh
source .venv/bin/activate

# 638 training clips, the music the tiny LLM learns from (n=800), and the evaluation world's (n=400)
for n in 800 400; do
  [ -f "$RUNS/music-world-$n/manifest.json" ] || { rm -rf "$RUNS/music-world-$n"
    anygpt data world --out "$RUNS/music-world-$n" --n "$n" --seed 0 --kinds music; }
done
# layer 1: the clip's instrument (a head trained on the world's labels) x 13 (rest or the frame's
# pitch class); layers 2-4 the rest; magnitudes below 0.002 are silence
anygpt codecs train music --world "$RUNS/music-world-800" --out "$RUNS/music-v2" --steps 2500 \
  --set units=tonal --set log_floor=0.002 --threads 1 --no-progress
# the decoder again, the codes frozen, with the loss on mel-band power
anygpt codecs train music --world "$RUNS/music-world-800" --out "$RUNS/music-v2-mel" \
  --init-from "$RUNS/music-v2/export" --steps 1000 --vq-warmup 0 --mel-weight 1.0 --threads 1 --no-progress
anygpt codecs ship --base anygpt/bundles/tiny --music "$RUNS/music-v2-mel/export" --out "$RUNS/bundle-music-v2"
anygpt eval codecs --bundle "$RUNS/bundle-music-v2" --world "$RUNS/music-world-400" --kinds music --json \
  | tee "$RUNS/music-v2-mel/eval_codecs.json"
anygpt codecs probe music --codec "$RUNS/music-v2-mel/export" --world "$RUNS/music-world-400" \
  | tee "$RUNS/music-v2-mel/probe.txt"
