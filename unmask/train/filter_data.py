"""The Learn2PD filter's training data: trajectories decoded through the engine, turned into per-position
features (decoding/filter_features.py `step_features`, the function the engine's rule calls) and labels."""
from __future__ import annotations

import time

import torch

from unmask.config import DecodeConfig
from unmask.decoding.filter_features import step_features, token_stats
from unmask.errors import ConfigError


def teacher_config(spec: str, gen_length: int, block_length: int) -> DecodeConfig:
    """'threshold=0.9,block=0' → a DecodeConfig (block 0: the whole canvas is one window; cache 'none')."""
    values = dict(part.split("=", 1) for part in spec.split(","))
    block = int(values.pop("block", block_length)) or gen_length
    if "threshold" in values:
        return DecodeConfig(gen_length=gen_length, block_length=block, commit="threshold",
                            threshold=float(values.pop("threshold")), confidence_fp64=True)
    if "learned" in values:
        return DecodeConfig(gen_length=gen_length, block_length=block, commit="learned",
                            learned_filter=values.pop("path"), filter_threshold=float(values.pop("learned")))
    raise ConfigError(f"unknown teacher {spec!r}; use threshold=<t>[,block=<n>]")


def trajectories(llm, prompts: list[list[int]], cfg: DecodeConfig) -> list[list[list[int]]]:
    """Per prompt, decoded through the engine: the canvas before each step, then the final canvas."""
    engine = llm.make_engine(max_running=len(prompts))
    row = {engine.add_request(p, cfg, stream_canvas=True): i for i, p in enumerate(prompts)}
    canvases = [[[llm.spec.mask_id] * cfg.gen_length] for _ in prompts]
    with torch.inference_mode():
        while engine.has_unfinished():
            for out in engine.step():
                if out.canvas is not None:
                    canvases[row[out.request_id]].append(list(out.canvas))
    return canvases


def windows(states: torch.Tensor, mask_id: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, G) bool windows of the blocks schedule and (T,) steps since each window opened, for T states."""
    T, G = states.shape
    idx = torch.arange(G)
    first = torch.where(states == mask_id, idx, G).amin(-1).clamp(max=G - 1)
    index = first // block
    step = torch.zeros(T, dtype=torch.long)
    for t in range(1, T):
        step[t] = step[t - 1] + 1 if index[t] == index[t - 1] else 0
    return idx[None, :] // block == index[:, None], step


def samples(llm, prompt: list[int], states: list[list[int]], final: list[int], block: int, every: int = 1
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) and labels (N,) of the masked positions in the window of every `every`-th state. The
    `prev_*` features of state t come from the logits of state t-1 (the forward the decoder ran one step
    before), none for the first state. Only the kept states and their predecessors are run through the model."""
    mask_id = llm.spec.mask_id
    canvas = torch.tensor(states)
    T = len(states)
    kept = torch.arange(0, T, every)
    needed = sorted(set(kept.tolist()) | {t - 1 for t in kept.tolist() if t > 0})
    at = {t: i for i, t in enumerate(needed)}
    logits = llm.logits([prompt + states[t] for t in needed])[:, len(prompt):]      # (len(needed), G, V)
    stats = token_stats(logits, llm.spec.eos_ids)
    argmax = logits.argmax(-1)
    now = torch.tensor([at[t] for t in kept.tolist()])
    before = torch.tensor([at.get(t - 1, 0) for t in kept.tolist()])
    first = (kept == 0)[:, None]
    prev_tokens = torch.where(first, -1, argmax[before])
    prev_p1 = torch.where(first, 0.0, stats[before, :, 0])
    is_masked = canvas[kept] == mask_id
    window, step = (w[kept] for w in windows(canvas, mask_id, block))
    features = step_features(stats[now], torch.ones_like(is_masked), is_masked, window, step, argmax[now],
                             (prev_tokens, prev_p1))
    keep = is_masked & window
    label = argmax[now] == torch.tensor(final)[None, :]
    return features[keep].float(), label[keep].float()


def collect(llm, prompts: list[list[int]], cfg, teachers: list[str], gen_length: int,
            reference: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in teachers:
        dc = teacher_config(name, gen_length, cfg.block_length)
        t0 = time.perf_counter()
        runs = trajectories(llm, prompts, dc)
        for prompt, canvases, final in zip(prompts, runs, reference):
            x, y = samples(llm, prompt, canvases[:-1], final, dc.window_length)
            xs.append(x)
            ys.append(y)
        n = sum(len(c) - 1 for c in runs)
        cfg.log(f"teacher {name}: {n} states, {sum(len(y) for y in ys[-len(prompts):])} samples, "
                f"{time.perf_counter() - t0:.0f} s")
    return torch.cat(xs), torch.cat(ys)


def reference_data(llm, prompts: list[list[int]], cfg, gen_length: int
                   ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """The one-token-per-step reference: its final canvases, and every `reference_every`-th state as samples."""
    block = cfg.block_length or gen_length
    dc = DecodeConfig(gen_length=gen_length, steps=gen_length, block_length=block, commit="linear",
                      stop_at_eos=False)
    t0 = time.perf_counter()
    runs = trajectories(llm, prompts, dc)
    finals = [c[-1] for c in runs]
    xs, ys = [], []
    for prompt, canvases, final in zip(prompts, runs, finals):
        x, y = samples(llm, prompt, canvases[:-1], final, block, every=cfg.reference_every)
        xs.append(x)
        ys.append(y)
    cfg.log(f"reference (one token per step, block {block}): {len(prompts)} prompts, "
            f"{sum(len(y) for y in ys)} samples, {time.perf_counter() - t0:.0f} s")
    return finals, torch.cat(xs), torch.cat(ys)
