#!/usr/bin/env bash
# AR-verified decoding on tiny-arith with the tiny-arith-ar verifier (APD, APD with the correction token,
# SpecDiff, FreeCache guided diffusion), against the teacher's llada (baseline) and fast-dllm in the same run, on
# the 500 held-out arith test problems; then an APD sweep (paper rule and apd_correct), FreeCache's acceptance
# modes, and plain greedy AR decoding of tiny-arith-ar on the same problems. Writes docs/bench-ar-verified-*.json.
# Usage: bash bench/ar-verified.sh [extra unmask bench flags]
set -euo pipefail
out=${OUT:-bench-out}
common=(--model tiny-arith --verifier tiny-arith-ar --limit 500 --batch-size 100 --set block_length=16)
unmask bench "${common[@]}" --preset fast-dllm,apd,apd-correct,specdiff,guided-diffusion --out "$out/ar-verified" "$@"
unmask bench "${common[@]}" --no-baseline --preset apd --sweep apd_correct=false,true \
  --sweep apd_mixture_weight=0,0.7,0.9 --sweep temperature=0,0.2 --out "$out/apd-sweep" "$@"
unmask bench "${common[@]}" --no-baseline --preset guided-diffusion --set guided_accept=threshold \
  --sweep guided_threshold=0.1,0.5 --out "$out/guided-threshold" "$@"
unmask bench "${common[@]}" --no-baseline --preset guided-diffusion --set guided_accept=topk \
  --sweep guided_top_k=2,3 --out "$out/guided-topk" "$@"
python -m unmask.train.evaluate tiny-arith-ar --task arith --n 500 | tee "$out/ar-greedy.json"
mkdir -p docs
cp "$out/ar-verified/tiny-arith-arith.json" docs/bench-ar-verified-tiny-arith.json
cp "$out/apd-sweep/tiny-arith-arith.json" docs/bench-ar-verified-apd-sweep.json
cp "$out/guided-threshold/tiny-arith-arith.json" docs/bench-ar-verified-guided-threshold.json
cp "$out/guided-topk/tiny-arith-arith.json" docs/bench-ar-verified-guided-topk.json
cp "$out/ar-greedy.json" docs/bench-ar-verified-ar-greedy.json
