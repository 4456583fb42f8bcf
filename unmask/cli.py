"""Command line: `unmask generate | presets | bench | train`. User errors print one line and exit 2."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from typing import Any, Callable

from unmask.config import DecodeConfig
from unmask.errors import ConfigError, UnmaskError
from unmask.presets import PRESETS
from unmask.settings import parse_assignments, parse_field

Handler = Callable[[argparse.Namespace], int]


def add_runner_flags(parser: argparse.ArgumentParser) -> None:
    """--compile / --eager: how each denoising step runs (LLM(compile=...), engine/runner.py)."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--compile", dest="compile", action="store_true", default=False,
                      help="run each step (forward, sampler, scores, commit) as one torch.compile'd graph; faster "
                           "per step once compiled, but each new configuration compiles first (a minute or more on "
                           "a CPU): docs/runner.md, bench/step_time.py")
    mode.add_argument("--eager", dest="compile", action="store_false", help="run the model eagerly (the default)")
    parser.add_argument("--max-context", type=int, default=None, metavar="N",
                        help="the longest prompt + generation a request may have (default: the model's context); "
                             "sizes the runner's K/V pool, --max-running rows of N positions, checked against free "
                             "memory at start (docs/runner.md)")
    parser.add_argument("--verifier", default=None, metavar="MODEL",
                        help="an autoregressive model with the same tokenizer (e.g. tiny-arith-ar), loaded beside the "
                             "model for AR-verified decoding: --preset apd | specdiff | guided-diffusion")


# ---- decode settings from flags ---------------------------------------------------------------------
def add_decode_flags(parser: argparse.ArgumentParser) -> None:
    """--preset, --set, and one --<field> flag per DecodeConfig field (help from the field metadata)."""
    parser.add_argument("--preset", default=None, help=f"decoding recipe: {', '.join(PRESETS)} "
                        "(default: the model's own)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any decode setting, e.g. --set threshold=0.8 (repeatable)")
    group = parser.add_argument_group("decode settings (same as --set)")
    for f in dataclasses.fields(DecodeConfig):
        group.add_argument("--" + f.name.replace("_", "-"), dest="field_" + f.name, default=None,
                           metavar="V", help=f.metadata.get("help"))


def decode_config(args: argparse.Namespace, llm: Any) -> DecodeConfig:
    """--preset (or the model's own defaults), then per-field flags, then --set."""
    overrides = {f.name: parse_field(f.name, getattr(args, "field_" + f.name), "--" + f.name.replace("_", "-"))
                 for f in dataclasses.fields(DecodeConfig) if getattr(args, "field_" + f.name) is not None}
    overrides.update(parse_assignments(args.set))
    if args.preset is None:
        return llm.default_config(**overrides)
    return llm.preset_config(args.preset, **overrides)


# ---- generate ---------------------------------------------------------------------------------------
class CanvasView:
    """Redraws each prompt's canvas in place on a terminal as its tokens unmask (░ = still masked)."""

    def __init__(self, llm: Any, rows: int) -> None:
        self.llm, self.rows, self.drawn = llm, rows, False
        self.width = shutil.get_terminal_size().columns - 1
        self.canvases: dict[str, list[int]] = {}
        self.steps: dict[str, int] = {}

    def __call__(self, outputs: list) -> None:
        for out in outputs:
            if out.canvas is not None:
                self.canvases[out.request_id] = out.canvas
                self.steps[out.request_id] = self.steps.get(out.request_id, 0) + 1
        lines = []
        for row, (rid, canvas) in enumerate(sorted(self.canvases.items(), key=lambda kv: int(kv[0].split("-")[1]))):
            mask = self.llm.spec.mask_id
            pieces = ["░" if t == mask else self.llm.tokenizer.decode([t]) for t in canvas]
            text = "".join(pieces).replace("\n", "⏎")
            lines.append(f"[{row}] step {self.steps[rid]:3d} {text}"[: self.width])
        up = f"\x1b[{self.rows}A" if self.drawn else ""
        sys.stderr.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        sys.stderr.flush()
        self.drawn = True


def run_generate(args: argparse.Namespace) -> int:
    from unmask.engine.llm import LLM

    llm = LLM(args.model, device=args.device, dtype=args.dtype, compile=args.compile, verifier=args.verifier,
              context_len=args.max_context)
    config = decode_config(args, llm)
    live = None if args.json or not sys.stderr.isatty() else CanvasView(llm, len(args.prompt))
    completions = llm.generate(list(args.prompt), config, chat=args.chat, on_step=live)
    for prompt, c in zip(args.prompt, completions):
        if args.json:
            print(json.dumps({"prompt": prompt, **c.to_dict()}))
        else:
            verified = f", {c.verifier_nfe} verifier NFE" if c.verifier_nfe else ""
            print(f"{c.text}\n  [{len(c.token_ids)} tokens, {c.nfe} NFE{verified}, {c.finish_reason}, {c.seconds:.2f} s]")
    return 0


def run_presets(args: argparse.Namespace) -> int:
    print("| preset | paper | settings | what it is |\n|---|---|---|---|")
    for name, p in PRESETS.items():
        knobs = ", ".join(f"{k}={v}" for k, v in p.values.items())
        print(f"| {name} | {p.paper} | {knobs} | {p.summary} |")
    return 0


# ---- parser -----------------------------------------------------------------------------------------
def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(prog="unmask", description="Fast inference for diffusion language models.",
                                     epilog=f"presets: {', '.join(PRESETS)}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Handler] = {"generate": run_generate, "presets": run_presets}

    gen = sub.add_parser("generate", help="denoise prompts with a decoding preset",
                         epilog=f"presets: {', '.join(PRESETS)}")
    gen.add_argument("prompt", nargs="+", help="prompt text (several prompts form one batch)")
    gen.add_argument("--model", required=True, help="checkpoint directory, bundled model name or hub id")
    gen.add_argument("--chat", action="store_true", help="wrap each prompt in the model's chat template")
    gen.add_argument("--json", action="store_true", help="print one JSON object per prompt")
    gen.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    gen.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    add_runner_flags(gen)
    add_decode_flags(gen)
    sub.add_parser("presets", help="list the decoding presets and their settings")
    for module_name in ("unmask.bench.command", "unmask.train.command", "unmask.train.distill_command",
                        "unmask.train.filter_command", "unmask.serve.command", "unmask.eval.lm_eval_command",
                        "unmask.eval.search_command"):
        _register_optional(module_name, sub, handlers)
    return parser, handlers


def _register_optional(module_name: str, sub: Any, handlers: dict[str, Handler]) -> None:
    """Subcommands defined next to the code they run (`unmask.<name>.command`): register(sub) and run(args)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return
        raise
    name = module.register(sub)  # the subcommand's name where it returns one, else its package's name
    handlers[name if isinstance(name, str) else module_name.split(".")[-2]] = module.run


def check_utf8(argv: list[str]) -> None:
    """Arguments decoded with surrogateescape (bytes that are not UTF-8) cannot be prompts or names."""
    for i, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                shown = repr(arg.encode("utf-8", "surrogateescape"))
            except UnicodeEncodeError:
                shown = ascii(arg)
            raise ConfigError(f"argument {i} ({shown[:60]}) is not valid UTF-8 text") from None


def main(argv: list[str] | None = None) -> int:
    """Run a command; user errors print one line and exit 2, Ctrl-C (even while torch loads) exits 130."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = "unmask"
    try:
        check_utf8(argv)
        parser, handlers = build_parser()  # imports the subcommands, and with them torch
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        command = f"unmask {args.command}"
        return handlers[args.command](args)
    except UnmaskError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
