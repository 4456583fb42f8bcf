#!/usr/bin/env bash
# Reproduce the README's tiny-arith tables and plot (docs/bench-*.json, docs/bench-tiny-arith.png).
# About 5 minutes on a 2-core CPU. Usage: bash bench/tiny-arith.sh [extra unmask bench flags]
set -euo pipefail
out=${OUT:-bench-out}
unmask bench --model tiny-arith --out "$out/main" "$@"
unmask bench --model tiny-arith --limit 64 --preset llada --sweep cache=none,prefix,dual,delayed,vicinity,feature,d2,elastic \
  --out "$out/cache" "$@"
unmask bench --model tiny-arith --limit 300 --preset fast-dllm,fast-dllm-dual,dkv-cache,dllm-cache,d2cache,elastic-cache \
  --out "$out/cache-presets" "$@"
mkdir -p docs
cp "$out/main/tiny-arith-arith.json" docs/bench-tiny-arith.json
cp "$out/main/tiny-arith-arith.png" docs/bench-tiny-arith.png
cp "$out/cache/tiny-arith-arith.json" docs/bench-caches-tiny-arith.json
cp "$out/cache-presets/tiny-arith-arith.json" docs/bench-cache-presets-tiny-arith.json
