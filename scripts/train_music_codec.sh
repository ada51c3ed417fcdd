#!/usr/bin/env bash
# The music codecs of docs/music-codec.md in one command: the music worlds; v2-mel (the tonal codec,
# then its decoder trained again on the frozen codes); v1-mel (the shipped codec's decoder trained again
# on its frozen codes: the LLM's music tokens unchanged); for each a codecs-only bundle with the tiny
# bundle's image and speech codecs beside it, the codec gate and the layer-1 probe on the evaluation
# world (n=400 seed 0). Rerun to resume. The tiny bundle itself is not changed.
# Usage: bash scripts/train_music_codec.sh [RUNS_DIR]   (default runs/codecs)
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
# the shipped codec as an export directory (its weights and its entry of the bundle's codecs.json)
mkdir -p "$RUNS/music-shipped"
cp anygpt/bundles/tiny/codecs/music.safetensors "$RUNS/music-shipped/weights.safetensors"
python - "$RUNS/music-shipped/codec.json" <<'PY'
import json, sys
entry = json.load(open("anygpt/bundles/tiny/codecs/codecs.json"))["music"]
json.dump({"name": entry["name"], "modality": "music", "config": entry["config"],
           "weights": "weights.safetensors"}, open(sys.argv[1], "w"), indent=2)
PY
# the decoder again, the codes frozen, with the loss on mel-band power: v2's and the shipped codec's
for pair in "v2-mel:$RUNS/music-v2/export" "v1-mel:$RUNS/music-shipped"; do
  name=${pair%%:*}; from=${pair#*:}
  anygpt codecs train music --world "$RUNS/music-world-800" --out "$RUNS/music-$name" --init-from "$from" \
    --steps 1000 --vq-warmup 0 --mel-weight 1.0 --threads 1 --no-progress
  anygpt codecs ship --base anygpt/bundles/tiny --music "$RUNS/music-$name/export" --out "$RUNS/bundle-music-$name"
  anygpt eval codecs --bundle "$RUNS/bundle-music-$name" --world "$RUNS/music-world-400" --kinds music --json \
    | tee "$RUNS/music-$name/eval_codecs.json"
  anygpt codecs probe music --codec "$RUNS/music-$name/export" --world "$RUNS/music-world-400" \
    | tee "$RUNS/music-$name/probe.txt"
done
