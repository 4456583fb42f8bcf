"""DecodeConfig validation: clear ConfigErrors naming the field, presets, overrides."""
import pytest

from unmask import DecodeConfig
from unmask.errors import ConfigError
from unmask.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds(name):
    assert DecodeConfig.preset(name).to_dict()


def test_preset_overrides_and_replace():
    cfg = DecodeConfig.preset("fast-dllm", threshold=0.8)
    assert cfg.threshold == 0.8 and cfg.commit == "threshold"
    assert cfg.replace(threshold=0.7).threshold == 0.7


@pytest.mark.parametrize("kwargs, words", [
    ({"gen_length": 0}, "gen_length must be > 0"),
    ({"temperature": -1.0}, "temperature must be in [0, 100], got -1.0"),
    ({"top_p": 1.5}, "top_p must be in (0, 1], got 1.5"),
    ({"commit": "nope"}, "unknown commit rule 'nope'; choose one of"),
    ({"alg": "vibes"}, "unknown score (alg) 'vibes'"),
    ({"cache": "magic"}, "unknown cache 'magic'"),
    ({"gen_length": 64, "block_length": 24}, "multiple of block_length"),
    ({"gen_length": 64, "block_length": 32, "steps": 63}, "multiple of the number of blocks"),
    ({"gen_length": 32, "steps": 64}, "steps per block"),
    ({"commit": "entropy-threshold"}, "needs alg='entropy'"),
    ({"cache": "dual", "gen_length": 32, "block_length": 32}, "cache 'dual' caches the masked suffix"),
    ({"cache": "vicinity", "gen_length": 32, "block_length": None}, "cache 'vicinity' caches the masked suffix"),
    ({"commit": "dream", "gen_length": 64, "block_length": 32, "steps": 63}, "multiple of the number of blocks"),
    ({"alg_temp": 0.5}, "alg_temp"),
    ({"steps": "ten"}, "wrong type"),
    ({"stop_at_eos": 1}, "wrong type"),
])
def test_invalid_configs_name_the_problem(kwargs, words):
    with pytest.raises(ConfigError, match=None) as err:
        DecodeConfig(**kwargs)
    assert words in str(err.value)


def test_unknown_preset_and_key_list_valid_names():
    with pytest.raises(ConfigError, match="choose one of: .*llada"):
        DecodeConfig.preset("turbo")
    with pytest.raises(ConfigError, match="unknown decode setting.*colour.*valid:"):
        DecodeConfig.preset("llada", colour="red")


def test_reference_alg_names_are_accepted():
    assert DecodeConfig(alg="low_confidence").alg == "low_confidence"
    assert DecodeConfig(alg="topk_margin", commit="dream").commit == "dream"
