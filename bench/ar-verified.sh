#!/usr/bin/env bash
# AR-verified decoding on tiny-arith with the tiny-arith-ar verifier (APD, APD with the correction token,
# SpecDiff, FreeCache guided diffusion), against the teacher's llada (baseline) and fast-dllm in the same run, on
# the 500 held-out arith test problems; then APD sweeps (the paper's rule; apd_correct), FreeCache's threshold and
# top-k acceptance modes, and plain greedy AR decoding of tiny-arith-ar on the same problems.
# Writes docs/bench-ar-verified-*.json. Usage: bash bench/ar-verified.sh [extra unmask bench flags]
set -euo pipefail
out=${OUT:-bench-out}
common=(--model tiny-arith --verifier tiny-arith-ar --limit 500 --batch-size 100)
unmask bench "${common[@]}" --preset fast-dllm,apd,apd-correct,specdiff,guided-diffusion --set block_length=16 \
  --out "$out/ar-verified" "$@"
unmask bench "${common[@]}" --no-baseline --preset apd \
  --sweep apd_mixture_weight=0,0.1,0.3,0.5,0.7,0.9 --sweep temperature=0,0.2 --out "$out/apd-sweep" "$@"
unmask bench "${common[@]}" --no-baseline --preset apd --set apd_correct=true --set block_length=16 \
  --sweep apd_mixture_weight=0.3,0.5,0.7 --sweep temperature=0,0.2 --out "$out/apd-correct-sweep" "$@"
unmask bench "${common[@]}" --no-baseline --preset guided-diffusion --set block_length=16 \
  --sweep guided_accept=threshold,topk --set guided_threshold=0.3 --set guided_top_k=2 --out "$out/guided-modes" "$@"
python -m unmask.train.evaluate tiny-arith-ar --task arith --n 500 | tee "$out/ar-greedy.json"
mkdir -p docs
for run in ar-verified:tiny-arith apd-sweep:apd-sweep apd-correct-sweep:apd-correct-sweep guided-modes:guided-modes; do
  cp "$out/${run%%:*}/tiny-arith-arith.json" "docs/bench-ar-verified-${run##*:}.json"
done
cp "$out/ar-greedy.json" docs/bench-ar-verified-ar-greedy.json
