"""Evaluation the field can compare with: the lm-evaluation-harness adapter (`lm_eval_adapter`, needs the
`eval` extra; `unmask lm-eval`), LLaDA's Monte-Carlo likelihood (`likelihood`), and the design-space search
(`search`, needs the `search` extra; `unmask search`). The code tasks live with the other bench tasks
(`unmask/bench/tasks/code.py`, `sandbox.py`). Nothing else in unmask imports this package; optional
dependencies are imported only by the module that uses them."""
