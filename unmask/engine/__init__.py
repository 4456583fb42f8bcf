"""Composes models, decoding rules and caches into generation.

Flow of one batch, three altitudes of state:
  RequestState (host: prompt ids, config, finish reason, timings; `llm.py`)
    → Canvas + DecodeState (device tensors: left-padded prompt, positions, tokens, masks, per-row counters)
    → Plan (from the cache: which canvas positions this forward computes, which K/V it reuses, which logits)
    → model inputs (ids and positions gathered at `plan.compute`, the plan's CacheView).
`generate.denoise` runs plan → forward → sample → score → commit → remask → apply → cache update → stop test.
"""
