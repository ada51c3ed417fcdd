#!/usr/bin/env bash
# Set up (if needed) and run the demo on the embedded default bundle; outputs go to demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/anygpt demo --out demo-out "$@"
