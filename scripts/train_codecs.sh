#!/usr/bin/env bash
# Rebuild the tiny bundle's codecs from nothing: the worlds they learn from, the trainings, the
# copy into anygpt/bundles/tiny/codecs/, and their evaluation. Every step resumes where it stopped
# (rerun the same command after an interruption). Usage: bash scripts/train_codecs.sh [RUNS_DIR] [SPEECH_WORLD]
# (SPEECH_WORLD: the n=10000 seed-1 images+speech world, built there if missing; train_tiny.sh passes its own)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/codecs}
SPEECH_WORLD=${2:-$RUNS/world-big}
[ -x .venv/bin/anygpt ] || bash scripts/setup.sh
source .venv/bin/activate
mkdir -p "$RUNS"

world() {  # world OUT N SEED KINDS...: built once (a finished world has its manifest)
  local out=$1 n=$2 seed=$3; shift 3
  [ -f "$out/manifest.json" ] || { rm -rf "$out"; anygpt data world --out "$out" --n "$n" --seed "$seed" --kinds "$@"; }
}
world "$RUNS/world-scenes" 10000 1 images     # 8000 training pictures, a seed the evaluation world does not use
world "$SPEECH_WORLD" 10000 1 images speech    # speech: its first 3000 training utterances
world "$RUNS/world-800" 800 0 music           # 638 training clips: the music the tiny LLM learns from

# The image and audio trainings use one thread each; on 2 cores run two at a time. A background
# training is waited for by its pid, so that its failure stops the script; one left running when the
# script stops is killed.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
anygpt codecs train scene --world "$RUNS/world-scenes" --out "$RUNS/scene" --steps 2400 --no-progress &
image=$!
# speech: layer 1 is the phone class of each frame (flite's alignments), layers 2-8 (128 codes each)
# the rest; then the voice renderer that writes layers 2-8 from layer 1 and a voice
anygpt codecs train speech --world "$SPEECH_WORLD" --out "$RUNS/phones" --steps 1000 --max-items 3000 --vq-warmup 0 \
  --threads 2 --set units=phones --set acoustic_codebook_size=128 --no-progress
wait "$image"
# music: layer 1 is the clip's instrument and each frame's pitch class (docs/music-codec.md, v2)
anygpt codecs train music --world "$RUNS/world-800" --out "$RUNS/music" --steps 2500 --set units=tonal \
  --set log_floor=0.002 --no-progress &
music=$!
# the acoustic layers again with layer 1 frozen (its codes, the LLM's tokens, stay those of the run above)
anygpt codecs train speech --world "$SPEECH_WORLD" --out "$RUNS/phones-acoustic" --init-from "$RUNS/phones/export" \
  --steps 1500 --max-items 3000 --vq-warmup 0 --threads 2 --set units=phones --set acoustic_codebook_size=128 --no-progress
anygpt codecs train voice --codec "$RUNS/phones-acoustic/export" --world "$SPEECH_WORLD" --out "$RUNS/voice" \
  --max-items 3000 --threads 2 --no-progress
# one code per phone for the LLM (runs of layer 1 merged), and the duration head that gives each its
# frames back (docs/tiny.md: ASR and TTS from merged runs); it reads the voice run's cached features
[ -e "$RUNS/durations/voice_data.pt" ] || { mkdir -p "$RUNS/durations"; ln -s ../voice/voice_data.pt "$RUNS/durations/"; }
anygpt codecs train durations --codec "$RUNS/voice/export" --world "$SPEECH_WORLD" --out "$RUNS/durations" \
  --max-items 3000 --threads 2 --no-progress
wait "$music"
# music: the decoder again on the frozen codes (the LLM's tokens unchanged), with a loss on mel-band
# power (docs/music-codec.md: music attribute ratio 0.887 -> 0.912, v2-mel)
anygpt codecs train music --world "$RUNS/world-800" --out "$RUNS/music-mel" --init-from "$RUNS/music/export" \
  --steps 1000 --vq-warmup 0 --mel-weight 1.0 --threads 1 --no-progress
anygpt codecs ship --image "$RUNS/scene/export" --speech "$RUNS/durations/export" --music "$RUNS/music-mel/export" \
  --out anygpt/bundles/tiny
anygpt eval codecs --bundle tiny --json | tee "$RUNS/eval_codecs.json"
