#!/usr/bin/env bash
# Fixed-seed outputs of the shipped bundle, as sha256 sums: run before and after a change that must not
# change behaviour, and compare the two lists.   bash scripts/fingerprint.sh OUT_DIR > sums.txt
set -euo pipefail
out=${1:?usage: scripts/fingerprint.sh OUT_DIR}
mkdir -p "$out"
fx=tests/fixtures/offworld
img=$fx/images/00.png
wav=$fx/speech/00.wav
run() { local name=$1; shift; anygpt chat --seed 0 --json --out "$out/$name" "$@" > "$out/$name.json"; }
run t2i --text "a small red circle in the middle" --want image
run caption --image "$img" --task caption
run asr --speech "$wav" --task asr
run tts --text "the cat sat on the mat" --want speech
run t2m --text "a calm piano piece in c major" --want music
run chat --text "hello, who are you?"
anygpt demo --out "$out/demo" > "$out/demo.log"
anygpt eval caption --bundle tiny --limit 5 --json > "$out/eval-caption.json"
# media by their bytes; JSON without timings and with the output folder's path taken out
cd "$out" && find . -type f \( -name '*.png' -o -name '*.wav' \) | sort | xargs sha256sum
find . -name '*.json' | sort | while read -r f; do
  printf '%s  %s\n' "$(python -c '
import json, sys
def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if not k.endswith("seconds")}
    if isinstance(x, list):
        return [clean(v) for v in x]
    return x.replace(sys.argv[2], "OUT") if isinstance(x, str) else x
print(json.dumps(clean(json.load(open(sys.argv[1]))), sort_keys=True))' "$f" "$(pwd)" | sha256sum | cut -c1-64)" "$f"
done
