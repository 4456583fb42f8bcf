"""Composes models, decoding rules and caches into generation (design notes: docs/engine.md).

  RequestState (host: prompt ids, config, seed, what the stream sent, costs; `request.py`)
    → Group rows (device: Canvas with per-row padding and positions, DecodeState, the cache's row storage)
    → Plan (from the cache: which canvas positions this forward computes, which K/V it reuses, which logits)
    → model inputs (ids and positions gathered at `plan.compute`, the plan's CacheView).
`Engine.step` admits waiting requests and runs `step.denoise_step` once per group: plan → forward → fusion →
sample → score → commit → remask/edit → apply → cache update → stop test. `LLM.generate` loops over it.
"""
