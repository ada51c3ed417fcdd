#!/usr/bin/env bash
# Rebuild the tiny bundle's codecs from nothing: the worlds they learn from, the four trainings, the
# copy into anygpt/bundles/tiny/codecs/, and their evaluation. Every step resumes where it stopped
# (rerun the same command after an interruption). Usage: bash scripts/train_codecs.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/codecs}
[ -x .venv/bin/anygpt ] || bash scripts/setup.sh
source .venv/bin/activate
mkdir -p "$RUNS"

world() {  # world OUT N SEED KINDS...: built once (a finished world has its manifest)
  local out=$1 n=$2 seed=$3; shift 3
  [ -f "$out/manifest.json" ] || { rm -rf "$out"; anygpt data world --out "$out" --n "$n" --seed "$seed" --kinds "$@"; }
}
world "$RUNS/world-scenes" 10000 1 images     # 8000 training pictures, a seed the evaluation world does not use
world "$RUNS/world-1500" 1500 0 images speech # 1200 training utterances (its images are not used now)
world "$RUNS/world-400" 400 0 music           # 322 training clips (the evaluation world's music)

# The image and audio trainings use one thread each; on 2 cores run two at a time. A background
# training is waited for by its pid, so that its failure stops the script; one left running when the
# script stops is killed.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
anygpt codecs train scene --world "$RUNS/world-scenes" --out "$RUNS/scene" --steps 2400 --no-progress &
image=$!
anygpt codecs train speech --world "$RUNS/world-1500" --out "$RUNS/speech" --no-progress
wait "$image"
anygpt codecs train music --world "$RUNS/world-400" --out "$RUNS/music" --no-progress &
music=$!
# the acoustic layers again, at 128 codes each, with layer 1 frozen (its codes stay those of the run above)
anygpt codecs train speech --world "$RUNS/world-1500" --out "$RUNS/speech-acoustic" --init-from "$RUNS/speech/export" \
  --set acoustic_codebook_size=128 --vq-warmup 0 --steps 1500 --no-progress
anygpt codecs train soundstorm --codec "$RUNS/speech-acoustic/export" --world "$RUNS/world-1500" --out "$RUNS/soundstorm" \
  --steps 9000 --no-progress
wait "$music"
anygpt codecs ship --image "$RUNS/scene/export" --speech "$RUNS/soundstorm/export" --music "$RUNS/music/export" \
  --out anygpt/bundles/tiny
anygpt eval codecs --bundle tiny --json | tee "$RUNS/eval_codecs.json"
