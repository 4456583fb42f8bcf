#!/usr/bin/env bash
# Di4C student beside its teacher in one `unmask bench` run: the arith test split, one 48-token block decoded in
# 1, 2 and 4 forwards (llada quota, greedy, seed 0: the student's λ per row per step comes from that seed).
# Usage: bash bench/di4c.sh [STUDENT] [extra unmask bench flags]   (STUDENT: runs/tiny-arith-di4c by default)
# Writes bench-out/di4c/ and copies the JSON record to bench/results/di4c.json.
set -euo pipefail
student=${1:-runs/tiny-arith-di4c}
shift || true
out=${OUT:-bench-out}/di4c
unmask bench --model "$student" --beside tiny-arith --preset llada --sweep steps=1,2,4 --set gen_length=48 \
  --set block_length=48 --no-baseline --limit 500 --batch-size 100 --out "$out" "$@"
mkdir -p bench/results
cp "$out/$(basename "$student")-arith.json" bench/results/di4c.json
