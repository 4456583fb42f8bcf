"""Evaluation the field can compare with: the lm-evaluation-harness adapter (`lm_eval_adapter`, needs the
`eval` extra), LLaDA's Monte-Carlo likelihood (`likelihood`), code tasks scored in a sandboxed subprocess
(`code_tasks`, `code_scorer`), and the design-space search (`search`, needs the `search` extra).
Nothing here is imported by the rest of unmask; optional dependencies are imported by the module that uses them."""
