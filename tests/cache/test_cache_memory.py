"""Each cache reports its size in bytes; freeing a request frees its cache; Completion carries the counters."""
from __future__ import annotations

import pytest

from cache_tiny import PROMPTS, run, tiny
from unmask import LLM
from unmask.config import DecodeConfig

KNOBS = {"vicinity": {"vicinity_size": 2}}


@pytest.mark.parametrize("name", ["prefix", "dual", "vicinity", "delayed"])
def test_cache_reports_bytes_and_reset_frees_them(name):
    model, spec = tiny("dream")
    cfg = DecodeConfig(gen_length=16, block_length=8, steps=16, stop_at_eos=False, cache=name, **KNOBS.get(name, {}))
    _, cache = run(model, spec, cfg)
    cfg_model = model.cfg
    L = max(len(p) for p in PROMPTS) + 16
    kv = 2 * cfg_model.n_layers * len(PROMPTS) * cfg_model.n_kv_heads * L * cfg_model.head_dim * 4  # K and V, fp32
    assert kv <= cache.nbytes() <= kv + len(PROMPTS) * L   # delayed adds a (B, L) bool validity map
    assert cache.cache.nbytes() == 0   # freed when the last row left its group


def test_completion_reports_computed_positions_and_cache_bytes(llada_dir):
    llm = LLM(llada_dir, device="cpu")
    base = DecodeConfig(gen_length=16, block_length=8, steps=16, stop_at_eos=False)
    plain = llm.generate([[5, 6, 7], [9, 10]], base)
    dual = llm.generate([[5, 6, 7], [9, 10]], base.replace(cache="dual"))
    layers, L = llm.model.cfg.n_layers, 3 + 16
    assert [c.computed for c in plain] == [16 * L * layers] * 2 and plain[0].cache_bytes == 0
    assert all(0 < d.computed < p.computed for d, p in zip(dual, plain))
    assert dual[0].cache_bytes > 0 and "computed" in dual[0].to_dict()
