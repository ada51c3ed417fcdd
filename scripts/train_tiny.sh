#!/usr/bin/env bash
# Rebuild AnyGPT-tiny, the embedded default, from nothing: the codecs (scripts/train_codecs.sh), the
# worlds to learn from, their records and token shards, the untrained bundle, pretraining, instruction
# tuning, its continuation on speech and more music, then on speech recognition and music captioning,
# then settled at half the lr, then a second and a third pass on speech, two epochs more at twice
# the lr, then more music captioning from a fourth world, then twice that music at twice the lr,
# and the shipped bundle in anygpt/bundles/tiny/.
# Every step resumes where it stopped: rerun the same command after an interruption.
# Usage: bash scripts/train_tiny.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/tiny}
[ -x .venv/bin/anygpt ] || bash scripts/setup.sh
source .venv/bin/activate
mkdir -p "$RUNS"

# Music and the conversations come from an 800-item world; images and speech from a larger one with
# another seed (the evaluation world is n=400 seed 0: a seed-0 picture would be drawn again there);
# stage 3 adds the music of a 4000-item world of a third seed, stage 9 that of an 8000-item one.
# They are built at low priority beside the codec trainings, which leave a core idle for a while.
W="$RUNS/world-800"
WB="$RUNS/world-big"
WM="$RUNS/world-music"
WM2="$RUNS/world-music2"
worlds() {
  [ -f "$W/manifest.json" ] || { rm -rf "$W"; anygpt data world --out "$W" --n 800 --seed 0 --no-progress; }
  anygpt data from-world --world "$W" --out "$RUNS/records" --max-music-seconds 4 --kinds music conversations
  anygpt data from-world --world "$WB" --out "$RUNS/records-big"
  [ -f "$WM/manifest.json" ] || { rm -rf "$WM"; anygpt data world --out "$WM" --n 4000 --seed 2 --kinds music --no-progress; }
  anygpt data from-world --world "$WM" --out "$RUNS/records-music" --max-music-seconds 4 --splits train validation
  [ -f "$WM2/manifest.json" ] || { rm -rf "$WM2"; anygpt data world --out "$WM2" --n 8000 --seed 3 --kinds music --no-progress; }
  anygpt data from-world --world "$WM2" --out "$RUNS/records-music2" --max-music-seconds 4 --splits train validation
}
trap 'for p in $(jobs -p); do pkill -P "$p"; kill "$p"; done 2>/dev/null || true' EXIT  # on a failure
# the larger world first: the speech codec learns from it too
[ -f "$WB/manifest.json" ] || { rm -rf "$WB"; anygpt data world --out "$WB" --n 10000 --seed 1 --kinds images speech --no-progress; }
echo "building the worlds and their records in the background: $RUNS/worlds.log"
(renice -n 10 "$BASHPID" >/dev/null; worlds) > "$RUNS/worlds.log" 2>&1 &
worlds=$!
bash scripts/train_codecs.sh "$RUNS/codecs" "$WB"  # finished trainings are skipped on a rerun
wait "$worlds" || { tail -20 "$RUNS/worlds.log"; echo "building the worlds failed: $RUNS/worlds.log"; exit 1; }
[ -f "$RUNS/init/manifest.json" ] || { rm -rf "$RUNS/init"; anygpt bundle init-tiny --world "$W" --out "$RUNS/init"; }
tokenize() {  # records dir, file stem; two worker processes (the codes do not depend on how many)
  for split in train validation; do
    anygpt data tokenize "$1/$split/$2.jsonl" --out "$1/units/$split/$2" --bundle "$RUNS/init" --max-seconds music=4 --workers 2
  done
}
tokenize "$RUNS/records" music_pairs
tokenize "$RUNS/records" chats
tokenize "$RUNS/records-big" image_pairs
tokenize "$RUNS/records-big" speech_pairs
tokenize "$RUNS/records-music" music_pairs
tokenize "$RUNS/records-music2" music_pairs
cp anygpt/train/recipes/tiny-mixtures/*.toml "$RUNS/records/"
bundle="$RUNS/init"
for stage in pretrain instruct extend speech settle speech2 speech3 speech4 music music2; do  # recipe tiny-STAGE, mixture tiny_STAGE.toml
  anygpt train --recipe "tiny-$stage" --set bundle="$bundle" --data "$RUNS/records/tiny_$stage.toml" --out "$RUNS/$stage"
  bundle="$RUNS/$stage/bundle"
done
python -c "from anygpt.bundles.tiny_init import ship; print('shipped', ship('$bundle'))"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then  # in a clone: compare with the committed bundle
  if git diff --quiet -- anygpt/bundles/tiny; then echo "the rebuilt bundle is byte-identical to the committed one"
  else git diff --stat -- anygpt/bundles/tiny; fi
fi
anygpt eval all --bundle tiny --limit 50 --json | tee "$RUNS/eval_all.json"
