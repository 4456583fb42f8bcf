#!/usr/bin/env bash
# AR-verified decoding on tiny-arith with the tiny-arith-ar verifier (APD, SpecDiff, FreeCache guided diffusion),
# against the teacher's llada (baseline) and fast-dllm in the same run, on the 500 held-out arith test problems;
# then plain greedy AR decoding of tiny-arith-ar on the same problems. Writes docs/bench-ar-verified-*.json.
# Usage: bash bench/ar-verified.sh [extra unmask bench flags]
set -euo pipefail
out=${OUT:-bench-out}
unmask bench --model tiny-arith --verifier tiny-arith-ar --limit 500 --batch-size 100 \
  --preset fast-dllm,apd,specdiff,guided-diffusion --set block_length=16 --out "$out/ar-verified" "$@"
unmask bench --model tiny-arith --verifier tiny-arith-ar --limit 500 --batch-size 100 --no-baseline \
  --preset apd --sweep apd_mixture_weight=0,0.1,0.3,0.5,0.7,0.9 --sweep temperature=0,0.2 --out "$out/apd-sweep" "$@"
python -m unmask.train.evaluate tiny-arith-ar --task arith --n 500 | tee "$out/ar-greedy.json"
mkdir -p docs
cp "$out/ar-verified/tiny-arith-arith.json" docs/bench-ar-verified-tiny-arith.json
cp "$out/apd-sweep/tiny-arith-arith.json" docs/bench-ar-verified-apd-sweep.json
cp "$out/ar-greedy.json" docs/bench-ar-verified-ar-greedy.json
