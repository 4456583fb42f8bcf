"""CLI: a good run, and user errors that print one line and exit 2."""
import json
import subprocess
import sys

import pytest

from unmask.cli import main


def test_generate_json(llada_dir, capsys):
    rc = main(["generate", "--model", str(llada_dir), "--json", "--set", "gen_length=16", "--set", "steps=16",
               "--set", "block_length=8", "Ann has 3 pens.", "Bob"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    for r in records:
        assert set(r) >= {"text", "token_ids", "nfe", "finish_reason", "seconds"}
        assert r["finish_reason"] in ("eos", "length") and r["nfe"] >= 1


def test_generate_flag_per_field(llada_dir, capsys):
    rc = main(["generate", "--model", str(llada_dir), "--preset", "fast-dllm", "--gen-length", "16",
               "--block-length", "8", "--threshold", "0.5", "x"])
    assert rc == 0
    assert "NFE" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--set", "steps=abc"], "--set steps: 'abc' is not int or none"),
    (["--set", "threshold"], "--set expects key=value"),
    (["--set", "colour=red"], "unknown decode setting 'colour'"),
    (["--set", "gen_length=30", "--set", "block_length=8"], "multiple of block_length"),
    (["--preset", "wino", "--set", "cfg_scale=1.5"], "with cfg_scale > 0 is not supported"),
])
def test_user_errors_exit_2_with_one_line(llada_dir, capsys, argv, words):
    rc = main(["generate", "--model", str(llada_dir), *argv, "hello"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_model_path(capsys):
    assert main(["generate", "--model", "/no/such/dir", "hi"]) == 2
    assert "/no/such/dir" in capsys.readouterr().err


def test_presets_table(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "| llada |" in out and "| fast-dllm |" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "unmask.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "generate" in out.stdout


def test_generate_with_a_verifier_reports_both_forward_counts(llada_dir, tmp_path, capsys):
    from tiny_models import write_tiny_model

    ar = write_tiny_model(tmp_path / "ar", "llada", seed=3, is_causal=True)
    rc = main(["generate", "--model", str(llada_dir), "--verifier", str(ar), "--preset", "specdiff", "--json",
               "--set", "gen_length=16", "--set", "verify_lookahead=4", "Ann has 3 pens."])
    assert rc == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["verifier_nfe"] == record["nfe"] >= 1
    rc = main(["generate", "--model", str(llada_dir), "--preset", "apd", "--set", "gen_length=16", "x"])
    assert rc == 2 and "needs a verifier model" in capsys.readouterr().err
    rc = main(["generate", "--model", str(ar), "x"])
    assert rc == 2 and "not a diffusion model" in capsys.readouterr().err
