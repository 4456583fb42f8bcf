"""unmask vs transformers' DiffusionGemmaForBlockDiffusion.generate on one random DiffusionGemma checkpoint,
side by side in one run: the same seeds, the same knobs, batch 1 (tokens asserted equal) and a batch.

    PYTHONPATH=. python bench/diffusion_gemma_vs_transformers.py [--threads 1] [--repeats 5]

No published DiffusionGemma weights are reachable here, so the checkpoint is random: every canvas runs all
its steps (a random model is never stable and confident), which makes the work per token fixed and the
timings comparable. transformers must be installed (the `dev` extra); the last stdout line is JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dg_reference import TEXT, VISION  # noqa: E402

from unmask.config import DecodeConfig  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402
from unmask.models.loader import load_model  # noqa: E402

SIZE = dict(vocab_size=4096, hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
            intermediate_size=512, moe_intermediate_size=128, num_experts=8, top_k_experts=2, num_hidden_layers=6,
            layer_types=["sliding_attention"] * 5 + ["full_attention"], sliding_window=64, global_head_dim=128)
CANVAS, GEN, STEPS, PROMPT = 64, 128, 16, 48


def reference(path: Path):
    import transformers

    cfg = transformers.DiffusionGemmaConfig(text_config={**TEXT, **SIZE}, vision_config=VISION, canvas_length=CANVAS)
    torch.manual_seed(0)
    model = transformers.DiffusionGemmaForBlockDiffusion(cfg).eval()
    model.save_pretrained(str(path))
    return model


def side_by_side(first, second, repeats: int) -> tuple[float, object, float, object]:
    """Median seconds and last output of each, the two run alternately (a load change hits both alike)."""
    times, outs = ([], []), [None, None]
    for _ in range(repeats):
        for i, fn in enumerate((first, second)):
            start = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), outs[0], statistics.median(times[1]), outs[1]


def transformers_run(model, prompts: torch.Tensor, seed: int):
    from transformers import EntropyBoundSamplerConfig

    torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(prompts, max_new_tokens=GEN, max_denoising_steps=STEPS, eos_token_id=[1],
                              pad_token_id=0, sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1))


def unmask_run(model, spec, prompts: list[list[int]], seed: int):
    engine = Engine(model, spec, max_running=len(prompts))
    config = DecodeConfig.preset("diffusion-gemma", gen_length=GEN, canvas_steps=STEPS, seed=seed)
    ids = [engine.add_request(p, config) for p in prompts]
    done = {}
    with torch.inference_mode():
        while engine.has_unfinished():
            done.update((o.request_id, o.completion) for o in engine.step() if o.finished)
    return [done[i] for i in ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference(Path(tmp))
        ours, spec = load_model(tmp)
    gen = torch.Generator().manual_seed(1)
    prompts = torch.randint(4, SIZE["vocab_size"], (args.batch, PROMPT), generator=gen)
    results = {}
    t_ref, ref_out, t_ours, our_out = side_by_side(lambda: transformers_run(ref, prompts[:1], 0),
                                                   lambda: unmask_run(ours, spec, prompts[:1].tolist(), 0), args.repeats)
    want = ref_out.sequences[0, PROMPT:].tolist()
    want = want[:want.index(1)] if 1 in want else want
    assert our_out[0].token_ids == want, "batch-1 tokens differ from transformers"
    results["batch1"] = {"tokens": len(want), "transformers_s": t_ref, "unmask_s": t_ours,
                         "transformers_tok_s": len(want) / t_ref, "unmask_tok_s": len(want) / t_ours,
                         "speedup": t_ref / t_ours, "tokens_equal": True}
    t_ref, ref_out, t_ours, our_out = side_by_side(lambda: transformers_run(ref, prompts, 0),
                                                   lambda: unmask_run(ours, spec, prompts.tolist(), 0), args.repeats)
    tokens = sum(len(c.token_ids) for c in our_out)
    ref_tokens = int((ref_out.sequences[:, PROMPT:] != 0).sum())
    results[f"batch{args.batch}"] = {"unmask_tokens": tokens, "transformers_tokens": ref_tokens,
                                     "transformers_s": t_ref, "unmask_s": t_ours,
                                     "transformers_tok_s": ref_tokens / t_ref, "unmask_tok_s": tokens / t_ours}
    for name, r in results.items():
        print(f"{name}: transformers {r['transformers_tok_s']:.1f} tok/s, unmask {r['unmask_tok_s']:.1f} tok/s")
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"threads": args.threads, "size": SIZE, "canvas": CANVAS, "gen_length": GEN, "canvas_steps": STEPS,
            "prompt": PROMPT, "torch": torch.__version__, "device": f"cpu: {platform.processor() or platform.machine()}",
            "git_sha": sha}
    print(json.dumps({"meta": meta, "results": results}))


if __name__ == "__main__":
    main()
