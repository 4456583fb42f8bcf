"""Bad decode settings, through every door (DecodeConfig, presets, from_dict, --set text): a ConfigError naming
the field. Every float knob must be finite and in range; ints are not bools and not absurdly large."""
import dataclasses
import math

import pytest

from unmask import DecodeConfig
from unmask.config_checks import FLOAT_RANGES, TYPES
from unmask.errors import ConfigError
from unmask.presets import PRESETS
from unmask.settings import parse_assignments

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("name", sorted(f.name for f in dataclasses.fields(DecodeConfig)))
def test_every_decode_field_refuses_a_value_of_the_wrong_type(name):
    """A new knob must join config_checks.TYPES: else a string reaches a range check and fails as a TypeError."""
    assert name in TYPES, f"DecodeConfig.{name} has no entry in config_checks.TYPES"
    with pytest.raises(ConfigError, match=name):
        DecodeConfig(**{name: object()})


@pytest.mark.parametrize("name", sorted(FLOAT_RANGES))
@pytest.mark.parametrize("value", [NAN, INF, -INF, 10**400])
def test_every_float_knob_refuses_non_finite_values(name, value):
    with pytest.raises(ConfigError) as err:
        DecodeConfig(**{name: value})
    message = str(err.value)
    assert message.startswith(f"{name} must be") and len(message) < 200 and "\n" not in message


@pytest.mark.parametrize("kwargs, words", [
    ({"temperature": 1e6}, "temperature must be in [0, 100], got 1000000.0 (higher temperatures"),
    ({"temperature": -0.5}, "temperature must be in [0, 100]"),
    ({"alg_temp": NAN, "commit": "dream"}, "alg_temp must be in [0, 100], got nan"),
    ({"threshold": 0.0}, "threshold must be a finite number > 0, got 0.0"),
    ({"threshold": -1, "commit": "linear"}, "threshold must be a finite number > 0"),
    ({"factor": -2.0}, "factor must be a finite number > 0"),
    ({"eps": 1.0}, "eps must be in (0, 1), got 1.0"),
    ({"d2_sigma": -1.0}, "d2_sigma must be a finite number ≥ 0"),
    ({"rho": 1.5}, "rho must be in [0, 1]"),
    ({"rollout_p": -0.1}, "rollout_p must be in [0, 1]"),
    ({"gamma": NAN}, "gamma must be in [0, 1], got nan"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"cfg_scale": NAN}, "cfg_scale must be a finite number ≥ 0"),
    ({"seed": 2**64}, "seed must be None (a random seed per request) or an int in [0, 2**63), got 18446744073709551616"),
    ({"seed": -1}, "seed must be None"),
    ({"seed": 1.5}, "seed has the wrong type"),
    ({"seed": True}, "seed must be a number, got True"),
    ({"gen_length": True}, "gen_length must be a number, got True"),
    ({"gen_length": 2**40}, "gen_length=1099511627776 is absurdly large"),
    ({"top_k": 0}, "top_k must be > 0, got 0"),
    ({"vicinity_size": -1}, "vicinity_size must be ≥ 0"),
    ({"inflate_w": -1}, "inflate_w must be ≥ 0"),
    ({"track_num": 0}, "track_num must be > 0"),
    ({"gen_length": 10**400}, "(401 characters) is absurdly large"),
    ({"temperature": "hot"}, "temperature has the wrong type: got 'hot' (str)"),
])
def test_bad_values_name_the_field(kwargs, words):
    with pytest.raises(ConfigError) as err:
        DecodeConfig(**kwargs)
    assert words in str(err.value)


def test_seed_none_means_a_seed_per_request_and_stays_valid():
    assert DecodeConfig(seed=None).seed is None
    assert DecodeConfig.preset("llada", seed=None).seed is None
    assert DecodeConfig(seed=2**63 - 1).seed == 2**63 - 1
    assert parse_assignments(["seed=none"]) == {"seed": None}
    assert DecodeConfig().seed is None  # the default: each request draws its own seed (reported)


def test_temperature_at_the_cap_is_accepted():
    assert DecodeConfig(temperature=100).temperature == 100


@pytest.mark.parametrize("call, words", [
    (lambda: DecodeConfig.preset(["llada"]), "preset must be a preset name (str), got list"),
    (lambda: DecodeConfig.preset(None), "preset must be a preset name (str), got NoneType"),
    (lambda: DecodeConfig.from_dict({1: 2}), "decode setting names must be strings, got 1"),
    (lambda: DecodeConfig.from_dict(["gen_length", 8]), "must be a mapping of field name to value, got list"),
    (lambda: DecodeConfig.from_dict(None), "got NoneType"),
    (lambda: DecodeConfig().replace(**{"colour": 1}), "unknown decode setting(s) colour"),
])
def test_api_misuse_is_a_config_error(call, words):
    with pytest.raises(ConfigError) as err:
        call()
    assert words in str(err.value)


@pytest.mark.parametrize("text, words", [
    ("temperature=nan", "temperature must be in [0, 100], got nan"),
    ("temperature=inf", "temperature must be in [0, 100], got inf"),
    ("threshold=nan", "threshold must be a finite number > 0, got nan"),
    ("eps=1e400", "eps must be in (0, 1), got inf"),
    ("seed=18446744073709551616", "seed must be None"),
])
def test_text_settings_reach_the_same_checks(text, words):
    with pytest.raises(ConfigError) as err:
        DecodeConfig.preset("llada", **parse_assignments([text]))
    assert words in str(err.value)


@pytest.mark.parametrize("name", ["llada", "dream", "dkv-cache", "dllm-cache", "d2cache"])
@pytest.mark.parametrize("gen_length", [8, 16])
def test_short_gen_length_clamps_the_presets_block_and_steps(name, gen_length):
    cfg = DecodeConfig.preset(name, gen_length=gen_length)
    assert cfg.gen_length == gen_length and cfg.num_steps <= gen_length and cfg.window_length <= gen_length


def test_clamping_changes_only_what_was_not_set():
    assert DecodeConfig.preset("llada", gen_length=256).to_dict() == {
        **DecodeConfig.preset("llada").to_dict(), "gen_length": 256}  # valid before: untouched
    with pytest.raises(ConfigError, match=r"steps per block"):
        DecodeConfig.preset("llada", gen_length=8, steps=64)  # an explicit value is never changed
    with pytest.raises(ConfigError, match=r"gen_length \(48\) must be a multiple of block_length \(32\)"):
        DecodeConfig.preset("llada", gen_length=48)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_unchanged_without_overrides(name):
    assert DecodeConfig.preset(name).to_dict() == DecodeConfig(**PRESETS[name].values).to_dict()


def test_checkpoint_defaults_are_clamped_like_the_preset():
    shipped = {"gen_length": 48, "steps": 48, "block_length": 16}  # e.g. tiny-arith's unmask_decode.json
    cfg = DecodeConfig.preset("llada", defaults=shipped, gen_length=8)
    assert (cfg.gen_length, cfg.steps, cfg.block_length) == (8, 8, 8)
    assert DecodeConfig.preset("llada", defaults=shipped).to_dict() == DecodeConfig.preset("llada", **shipped).to_dict()
    with pytest.raises(ConfigError, match="must be a mapping"):
        DecodeConfig.preset("llada", defaults=[1])
