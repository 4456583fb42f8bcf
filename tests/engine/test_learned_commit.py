"""commit='learned' in the engine: where it looks for its filter, and the errors when there is none or it is bad."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
from cache_tiny import tiny  # noqa: E402

from unmask.config import DecodeConfig  # noqa: E402
from unmask.decoding.filter_head import FILTER_FILE, FilterHead  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402
from unmask.errors import ConfigError  # noqa: E402

CFG = DecodeConfig(gen_length=16, block_length=8, commit="learned")


def test_the_filter_beside_the_model_is_used_and_a_bad_or_missing_one_is_refused(tmp_path):
    net, spec = tiny("llada")
    with pytest.raises(ConfigError, match="train-filter"):
        Engine(net, spec).add_request([5, 6, 7], CFG)                      # no model directory, no learned_filter
    with pytest.raises(ConfigError, match="has no learn2pd_filter"):
        Engine(net, spec, model_dir=tmp_path).add_request([5, 6, 7], CFG)
    FilterHead().save(tmp_path)
    engine = Engine(net, spec, model_dir=tmp_path)
    engine.add_request([5, 6, 7], CFG)
    while engine.has_unfinished():
        done = [o for o in engine.step() if o.finished]
    assert done[0].completion.error is None and len(done[0].completion.token_ids) > 0
    (tmp_path / FILTER_FILE).write_bytes(b"\x00" * 16)
    with pytest.raises(ConfigError, match="cannot be read"):
        Engine(net, spec, model_dir=tmp_path).add_request([5, 6, 7], CFG)
