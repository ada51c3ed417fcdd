#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine: Debian packages, a virtual environment in
# .venv with CPU torch pinned, and the package itself. Quick (well under a second) when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

inputs=(pyproject.toml scripts/setup.sh scripts/apt-packages.txt scripts/constraints.txt)
want=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
stamp=.venv/.anygpt-setup
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi

# Debian packages (flite, fluidsynth, ...): installed only when missing.
mapfile -t apt_wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | awk 'NF{print $1}')
missing=()
for p in "${apt_wanted[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
# torch first and pinned: anything asking for plain `torch` would pull a multi-GB CUDA build.
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install -c scripts/constraints.txt -e ".[test]"
# The real SpeechTokenizer model code, without its declared dependencies: they include torchaudio,
# which breaks beside CPU torch. Only its model module is imported (it needs torch and einops).
"${pip[@]}" install --no-deps "speechtokenizer==1.0.1"
# Judges: resemblyzer's metadata wants webrtcvad built from source (webrtcvad-wheels is installed
# instead) and unpinned torch; pycocoevalcap's wants pycocotools, which CIDEr-D does not use.
"${pip[@]}" install --no-deps "resemblyzer==0.1.4" "pycocoevalcap==1.2"
if .venv/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchaudio') is None)"; then
  echo "setup: torchaudio is installed in .venv; it breaks audio imports beside CPU torch" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "setup: done (.venv ready)"
