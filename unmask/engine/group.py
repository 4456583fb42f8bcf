"""Group: the running rows that share one forward each step (same config up to the seed, one canvas width).

Rows are compact, 0..B-1. Between steps rows join at the end (`join`) and finished or aborted rows leave
(`keep`): the canvas, the DecodeState, the generators and the cache's per-row storage are re-indexed
together, so each request keeps its own offsets, clock and cache row, and a new row's first step computes its
whole canvas exactly as it would alone.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from unmask.cache import Canvas
from unmask.config import DecodeConfig
from unmask.decoding import DecodeState
from unmask.engine.api import Completion, FinishReason, StepOutput
from unmask.engine.block_layout import block_offsets
from unmask.engine.autoregressive import ARModel
from unmask.engine.build import build_parts
from unmask.engine.request import RequestState
from unmask.engine.step import denoise_step
from unmask.engine.verify import verifier_computed, verifier_forwards
from unmask.models.cache_view import positions_from_mask
from unmask.models.spec import DiffusionSpec


class Group:
    def __init__(self, config: DecodeConfig, prompt_width: int, model: nn.Module, spec: DiffusionSpec,
                 device: torch.device, learned_filter: object | None = None, verifier: ARModel | None = None) -> None:
        self.config, self.prompt_width, self.model, self.spec, self.device = config, prompt_width, model, spec, device
        self.learned_filter, self.verifier = learned_filter, verifier
        self.key = None
        self.runner = None   # the engine's Runner (engine/runner.py): how the step runs; None = eager
        self.arriving: list[RequestState] = []   # admitted; they join at the start of the next step
        self.rows: list[RequestState] = []
        self.generators: list[torch.Generator] = []
        self.parts = build_parts(config, spec, self.generators, learned_filter, verifier)
        self.canvas: Canvas | None = None
        self.state: DecodeState | None = None
        self.max_steps = 4 * config.gen_length + 8   # each step commits ≥ 1 per row; this only guards remasking

    def __len__(self) -> int:
        return len(self.rows) + len(self.arriving)

    def fits(self, request: RequestState) -> bool:
        return request.group_key == self.key and request.prompt_length <= self.prompt_width

    # ---- rows join and leave (between steps) ------------------------------------------------------
    def new_rows(self, requests: list[RequestState]) -> tuple[Canvas, DecodeState]:
        """Canvas and fresh state of `requests`: prompts left-padded to the group's width, positions per row."""
        P, G = self.prompt_width, self.config.gen_length
        pad = self.spec.pad_id if self.spec.pad_id is not None else self.spec.eos_ids[0]
        prompt = torch.tensor([[pad] * (P - r.prompt_length) + r.prompt_ids for r in requests], device=self.device)
        real = torch.tensor([[False] * (P - r.prompt_length) + [True] * r.prompt_length for r in requests],
                            device=self.device)
        key_mask = torch.cat([real, torch.ones(len(requests), G, dtype=torch.bool, device=self.device)], 1)
        canvas = Canvas(prompt, key_mask, positions_from_mask(key_mask), self.spec.logit_shift)
        state = DecodeState.start(len(requests), G, self.spec.mask_id, self.spec.eos_ids, self.device)
        state.block_offset = block_offsets([r.prompt_length for r in requests], self.spec,
                                           self.config.window_length, self.device)
        return canvas, state

    def join(self, requests: list[RequestState]) -> None:
        canvas, state = self.new_rows(requests)
        old = len(self.rows)
        self.canvas = canvas if self.canvas is None else Canvas.cat(self.canvas, canvas)
        self.state = state if self.state is None else DecodeState.cat(self.state, state)
        self.rows += requests
        self.generators += [r.generator for r in requests]
        self.parts.cache.take_rows(list(range(old)) + [-1] * len(requests))
        self.order_by_slot()

    def order_by_slot(self) -> None:
        """With the runner's K/V pool, keep the rows in slot order (a permutation of the rows, moving slot numbers
        and small per-row tensors, never K/V), so that rows holding a run of slots read the pool as one view
        instead of gathering it every layer. Without a pool, nothing moves."""
        slots = [r.slot for r in self.rows]
        if None in slots or slots == sorted(slots):
            return
        order = sorted(range(len(slots)), key=slots.__getitem__)
        self.rows = [self.rows[r] for r in order]
        self.generators[:] = [self.generators[r] for r in order]
        self.canvas, self.state = self.canvas.select(order), self.state.select(order)
        self.parts.cache.take_rows(order)

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (indices into the current rows); the others' slots are freed now."""
        if len(rows) == len(self.rows):
            return
        self.rows = [self.rows[r] for r in rows]
        self.generators[:] = [self.generators[r] for r in rows]
        if not rows:
            self.canvas = self.state = None
            self.parts.cache.reset()
            return
        self.canvas, self.state = self.canvas.select(rows), self.state.select(rows)
        self.parts.cache.take_rows(rows)

    def sibling(self) -> "Group":
        """An empty group with this one's config and width (its rows can merge into this one)."""
        part = Group(self.config, self.prompt_width, self.model, self.spec, self.device, self.learned_filter,
                     self.verifier)
        part.key, part.runner = self.key, self.runner
        return part

    def split(self, rows: list[int], refreshing: bool = False) -> "Group":
        """Move `rows` into a new group with the same config and width (their cache rows move with them;
        `refreshing`: they refresh at their next step, see Cache.split)."""
        part = self.sibling()
        rest = [r for r in range(len(self.rows)) if r not in set(rows)]
        part.rows, part.generators[:] = [self.rows[r] for r in rows], [self.generators[r] for r in rows]
        part.canvas, part.state = self.canvas.select(rows), self.state.select(rows)
        part.parts.cache = self.parts.cache.split(rows, refreshing)
        self.rows, self.generators[:] = [self.rows[r] for r in rest], [self.generators[r] for r in rest]
        self.canvas, self.state = self.canvas.select(rest), self.state.select(rest)
        return part

    def merge(self, part: "Group") -> None:
        """Take back the rows of a group split from this one (appended after this group's rows)."""
        if not part.rows:
            return
        if not self.rows:
            self.rows, self.canvas, self.state = part.rows, part.canvas, part.state
            self.generators[:] = part.generators
            self.parts.cache = part.parts.cache
            return
        self.rows += part.rows
        self.generators += part.generators
        self.canvas, self.state = Canvas.cat(self.canvas, part.canvas), DecodeState.cat(self.state, part.state)
        self.parts.cache.merge(part.parts.cache)
        self.order_by_slot()

    # ---- one step ---------------------------------------------------------------------------------
    def step(self) -> list[StepOutput]:
        """One denoising step for every row. Where the cache makes some forwards much larger than others (rows
        arriving or opening a block refresh everything), those rows run together in a forward of their own,
        so the others keep their cheap reuse step. Without such a cache, arriving rows simply join."""
        arriving, self.arriving = self.arriving, []
        if self.parts.cache.uniform_cost:   # every row's forward computes the same positions
            if arriving:
                self.join(arriving)
            return self.step_rows()
        heavy = (self.parts.cache.heavy_rows(self.state) or [False] * len(self.rows)) if self.rows else []
        heavy = [h or s == 0 for h, s in zip(heavy, self.state.row_steps)]
        if all(heavy) or (not any(heavy) and not arriving):
            if arriving:
                if all(heavy):
                    self.parts.cache.drop_rewritten()
                self.join(arriving)
            return self.step_rows()
        part = self.split([r for r, h in enumerate(heavy) if h], refreshing=True) if any(heavy) else self.sibling()
        if arriving:
            part.join(arriving)
        outputs = self.step_rows() + part.step_rows()
        self.last_step_cost = max(self.last_step_cost, part.last_step_cost)   # per row: the larger forward
        self.merge(part)
        return outputs

    def step_rows(self) -> list[StepOutput]:
        """One denoising step for every row; finished rows leave. One host transfer."""
        state, cache = self.state, self.parts.cache
        if self.runner is not None:
            self.runner.bind(cache, [r.slot for r in self.rows])   # the K/V of row r live in pool row r.slot
        model, core = self.runner.functions(self.parts) if self.runner is not None else (self.model, None)
        plan, broken = denoise_step(model, self.canvas, state, self.parts, core)
        B, G = state.batch, state.gen_length
        n_layers = len(self.model.layers)
        q = self.canvas.key_mask.shape[1] if plan.compute is None else plan.compute.shape[1]
        cost = plan.row_cost if plan.row_cost is not None else torch.full((B,), q * n_layers * plan.row_passes,
                                                                          device=self.device)
        self.last_step_cost = (plan.step_cost if plan.step_cost is not None else q * n_layers) * plan.row_passes
        request = cache.host_request(state)
        packed = [state.finished.long(), self.parts.remask.final_length(state), state.first_eos(), broken.long(),
                  cost.long(), verifier_forwards(state), verifier_computed(state), state.tokens.flatten()]
        host = torch.cat(packed + ([request.long()] if request is not None else [])).cpu().tolist()  # the one sync
        finished, final, eos, bad, cost_h, verifier_nfe, verifier_cost = (host[i * B:(i + 1) * B] for i in range(7))
        tokens = [host[7 * B + r * G: 7 * B + (r + 1) * G] for r in range(B)]
        if request is not None:
            cache.host_reply(host[7 * B + B * G:])
        share = cache.nbytes() // B
        outputs, keep = [], []
        for r, req in enumerate(self.rows):
            req.computed += cost_h[r]
            req.model_rows += plan.row_passes
            req.cache_bytes = max(req.cache_bytes, share)
            req.verifier_nfe, req.verifier_computed = verifier_nfe[r], verifier_cost[r]
            out = self.row_output(req, tokens[r], min(final[r], eos[r]), state.row_steps[r])
            if bad[r]:
                self.finish(req, out, tokens[r], eos[r], state.row_steps[r],
                            error="the model produced non-finite logits (NaN or inf): the checkpoint's weights are "
                                  "broken or the dtype overflowed")
            elif finished[r]:
                self.finish(req, out, tokens[r], eos[r], state.row_steps[r])
            elif state.row_steps[r] >= self.max_steps:
                self.finish(req, out, tokens[r], eos[r], state.row_steps[r],
                            error=f"decoding did not finish in {self.max_steps} steps; a remask rule reopens too much")
            else:
                keep.append(r)
            outputs.append(out)
        self.keep(keep)
        return outputs

    def row_output(self, req: RequestState, tokens: list[int], final: int, steps: int) -> StepOutput:
        new = tokens[req.sent:final] if final > req.sent else []
        req.sent = max(req.sent, final)
        return StepOutput(req.request_id, new_token_ids=new, canvas=tokens if req.stream_canvas else None)

    def finish(self, req: RequestState, out: StepOutput, tokens: list[int], eos: int, nfe: int,
               error: str | None = None) -> None:
        answer = [t for t in tokens[:eos] if t != self.spec.mask_id]
        if error is not None:
            reason = FinishReason.ERROR
        else:
            reason = FinishReason.EOS if eos < len(tokens) else FinishReason.LENGTH
            out.new_token_ids += answer[req.sent:]
            req.sent = len(answer)
        out.finished, out.error = True, error
        out.completion = Completion("", answer, nfe, reason.value, time.perf_counter() - req.arrived,
                                    computed=req.computed, model_rows=req.model_rows,
                                    cache_bytes=req.cache_bytes, seed=req.seed, prompt_tokens=req.prompt_length,
                                    error=error, verifier_nfe=req.verifier_nfe,
                                    verifier_computed=req.verifier_computed)
