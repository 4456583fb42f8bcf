"""The command line never shows a traceback: user errors exit 2 with one line, Ctrl-C exits 130."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import unmask.cli as cli
from unmask.cli import main

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(capsys, rc: int, words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert words in err, err
    return err


@pytest.mark.parametrize("argv, words", [
    (["--set", "temperature=nan"], "temperature must be in [0, 100], got nan"),
    (["--set", "temperature=1e6"], "temperature must be in [0, 100]"),
    (["--set", "threshold=inf", "--preset", "fast-dllm"], "threshold must be a finite number > 0, got inf"),
    (["--set", "seed=18446744073709551616"], "seed must be None"),
    (["--set", "eps=nan", "--preset", "dream"], "eps must be in (0, 1), got nan"),
    (["--gen-length", "8", "--block-length", "16"], "gen_length (8) must be a multiple of block_length (16)"),
])
def test_bad_settings_exit_2(llada_dir, capsys, argv, words):
    one_line_error(capsys, main(["generate", "--model", str(llada_dir), *argv, "hi"]), words)


def test_short_gen_length_on_the_llada_preset_just_works(llada_dir, capsys):
    assert main(["generate", "--model", str(llada_dir), "--preset", "llada", "--set", "gen_length=8", "--json",
                 "hi"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["finish_reason"] in ("eos", "length")


@pytest.mark.parametrize("change, words", [
    (lambda cfg: [cfg], "config.json must hold a JSON object, got list"),
    (lambda cfg: {**cfg, "d_model": 64.0}, "d_model must be an integer, got 64.0"),
    (lambda cfg: {**cfg, "rope_theta": -1}, "rope_theta must be a finite number > 0, got -1"),
])
def test_bad_checkpoints_exit_2(llada_dir, tmp_path, capsys, change, words):
    path = Path(shutil.copytree(llada_dir, tmp_path / "ckpt"))
    (path / "config.json").write_text(json.dumps(change(json.loads((path / "config.json").read_text()))))
    one_line_error(capsys, main(["generate", "--model", str(path), "hi"]), words)


def test_chat_template_bomb_exits_2(llada_dir, tmp_path, capsys):
    path = Path(shutil.copytree(llada_dir, tmp_path / "ckpt"))
    config = json.loads((path / "tokenizer_config.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": "{{ 'a' * 10**9 }}"}))
    one_line_error(capsys, main(["generate", "--model", str(path), "--chat", "hi"]), "chat template")


def test_invalid_utf8_argument_in_process(capsys):
    rc = main(["generate", "--model", "tiny-arith", "caf\udce9"])
    one_line_error(capsys, rc, "argument 4 (b'caf\\xe9') is not valid UTF-8 text")


def test_invalid_utf8_prompt_bytes_on_the_command_line():
    out = subprocess.run([sys.executable, "-m", "unmask.cli", "generate", "--model", "tiny-arith", b"\xff\xfe ok"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "unmask: error: argument 4 (b'\\xff\\xfe ok') is not valid UTF-8 text"


def test_ctrl_c_while_importing_the_subcommands(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_register_optional", interrupted)
    assert main(["generate", "--model", "tiny-arith", "hi"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted" in err


def test_ctrl_c_while_loading_the_model(monkeypatch, capsys):
    import unmask.engine.llm as llm

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(llm, "load_model", interrupted)
    assert main(["generate", "--model", "tiny-arith", "hi"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, unmask.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see torch being loaded")
def test_real_ctrl_c_during_start_up():
    """SIGINT once the child is loading torch (inside main, before any model exists): exit 130, no traceback."""
    child = subprocess.Popen([sys.executable, "-m", "unmask.cli", "generate", "--model", "tiny-arith", "2+2="],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if "torch" in Path(f"/proc/{child.pid}/maps").read_text():
                break
        except OSError:
            pass
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err, err


@pytest.mark.parametrize("argv, words", [
    (["--max-context", "0"], "--max-context (context_len) must be in [1, 160]"),
    (["--max-context", "161"], "--max-context (context_len) must be in [1, 160]"),
    (["--max-context", "20"], "exceeds the runner's context length 20 (--max-context)"),
])
def test_max_context_out_of_range_or_too_short_exits_2(capsys, argv, words):
    one_line_error(capsys, main(["generate", "--model", "tiny-arith", *argv, "1+1="]), words)
