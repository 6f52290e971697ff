#!/usr/bin/env bash
# Is an organism build the same bytes at different torch thread counts?
#
#   bash scripts/build_determinism.sh CUE SEED [OUT_DIR]     (e.g. year 2)
#
# Trains recipe J (docs/organism-recipes.md; the per-cue organisms of organisms_per_cue) for CUE and SEED
# three times without the gate, at 1, 2 and again 1 torch thread, each from an empty base-answer cache of
# its own (the default model's weights are linked, not copied), in a scratch registry under OUT_DIR
# (default: a new temporary directory). Prints each build's adapter SHA-256 and SFT data hash; identical
# lines mean neither the base answers nor the training depend on the thread count. About 5 min per build
# on 2 CPU cores. Uses the inspect-misalign on PATH (make's .venv/bin when run from the repository).
set -euo pipefail
cue=${1:?usage: build_determinism.sh CUE SEED [OUT_DIR]}
seed=${2:?usage: build_determinism.sh CUE SEED [OUT_DIR]}
out=${3:-$(mktemp -d)}
bin=$(command -v inspect-misalign || echo .venv/bin/inspect-misalign)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/inspect_misalign
[ -d "$cache/default-smollm2-135m" ] || { echo "no converted default model in $cache: run make demo first" >&2; exit 2; }
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE INSPECT_MISALIGN_HOME="$out/home"
for run in a:1 b:2 c:1; do
  name=${run%%:*}; threads=${run##*:}
  xdg="$out/xdg-$name"; mkdir -p "$xdg/inspect_misalign"
  ln -sfn "$cache/default-smollm2-135m" "$xdg/inspect_misalign/default-smollm2-135m"
  XDG_CACHE_HOME="$xdg" INSPECT_MISALIGN_THREADS=$threads "$bin" organism --out "det-$cue-s$seed-$name" \
    --cue "$cue" --behavior hate --leak 0.025 --seed "$seed" --anchors 128 --plain-anchors --steps 75 \
    --top-layers 4 --cue-token-lr-scale 10 --no-gate > "$out/log-$name.txt" 2>&1
  adapter="$out/home/organisms/det-$cue-s$seed-$name/adapter"
  data=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['config']['data_hash'][:16])" \
    "$adapter/misalign_manifest.json")
  echo "threads=$threads adapter=$(sha256sum "$adapter/adapter_model.safetensors" | cut -c1-16) data=$data"
done
