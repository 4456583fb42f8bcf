#!/usr/bin/env bash
# lm-evaluation-harness on tiny-arith through the `unmask` model: a local task set on the arith test split
# (generate_until, multiple choice = loglikelihood, loglikelihood_rolling), written by tests/eval/lm_eval_tasks.py.
# Usage: bash bench/lm_eval_tiny_arith.sh [N examples, default 32]. Needs: pip install -e ".[eval]"
set -euo pipefail
n=${1:-32}
dir=$(mktemp -d)
python -c "import sys; sys.path.insert(0, 'tests/eval'); from pathlib import Path; import lm_eval_tasks as t; t.write_task_dir(Path('$dir'), $n)"
HF_DATASETS_OFFLINE=1 unmask lm-eval run --model unmask \
  --model_args pretrained=tiny-arith,preset=fast-dllm,mc_num=32,mc_batch_size=32,split_whitespace=False \
  --tasks unmask_arith_gen,unmask_arith_choice,unmask_arith_rolling --include_path "$dir" --batch_size 16
