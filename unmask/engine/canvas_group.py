"""CanvasGroup: the running rows of an encoder–canvas model with uniform corruption (DiffusionGemma).

The engine uses it in place of `Group` when the model's spec declares `attention="encoder_canvas"`. Each row
decodes fixed canvases one after another: at a canvas's start its pending tokens (the prompt, then the
previous canvas) are encoded onto the row's own prompt K/V, and its canvas is drawn at random from the row's
generator. Each step is one batched decoder forward over every row (each attending to its own K/V), then per
row: linear temperature → sample proposals → entropy-bound accept → renoise the rest → stable-and-confident
stop. A finished canvas contributes its argmax tokens; an EOS in it (or gen_length reached) ends the row.

Rows keep their own clocks, generators and K/V, so a request's tokens do not depend on its neighbours.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from unmask.config import DecodeConfig
from unmask.decoding.uniform import (StableAndConfident, entropy, entropy_bound_accept, random_canvas,
                                     sample_proposals, temperatures)
from unmask.engine.api import Completion, FinishReason, StepOutput
from unmask.engine.request import RequestState
from unmask.models.diffusion_gemma import PromptKV, stack_prompts
from unmask.models.spec import DiffusionSpec


@dataclass
class CanvasRow:
    """The host side of one row: its K/V, tokens still to encode, and the canvases it has finished."""

    request: RequestState
    pending: list[int]
    kv: PromptKV = field(default_factory=PromptKV)
    generated: list[int] = field(default_factory=list)
    nfe: int = 0
    starting: bool = True        # the next step opens a new canvas
    starting_step: bool = True   # the next step is its canvas's first (no self-conditioning signal)


class CanvasGroup:
    def __init__(self, config: DecodeConfig, prompt_width: int, model: nn.Module, spec: DiffusionSpec,
                 device: torch.device) -> None:
        self.config, self.prompt_width, self.model, self.spec, self.device = config, prompt_width, model, spec, device
        self.key = None
        self.arriving: list[RequestState] = []
        self.rows: list[RequestState] = []
        self.state: list[CanvasRow] = []
        self.C, self.vocab = spec.canvas_length, model.cfg.vocab_size
        self.stopper = StableAndConfident(config.stability_threshold, config.confidence_threshold)
        self.canvas = self.argmax = self.conditioning = self.history = self.remaining = None
        self.conditioned: Tensor | None = None
        self.prompt_kv = None   # the rows' K/V stacked for the decoder; rebuilt when a row's K/V or the rows change
        self.last_step_cost = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.arriving)

    def fits(self, request: RequestState) -> bool:
        return request.group_key == self.key   # prompts are encoded per row: no shared width

    # ---- rows join and leave ----------------------------------------------------------------------
    def join(self, requests: list[RequestState]) -> None:
        B, C, dev = len(requests), self.C, self.device
        fresh = {"canvas": torch.zeros(B, C, dtype=torch.long, device=dev), "argmax": None,
                 "conditioning": torch.zeros(B, C, self.vocab, device=dev, dtype=self.model.embed.weight.dtype),
                 "conditioned": torch.zeros(B, dtype=torch.bool, device=dev),
                 "history": self.stopper.fresh_history(B, C, dev),
                 "remaining": torch.zeros(B, dtype=torch.long, device=dev)}
        fresh["argmax"] = fresh["canvas"].clone()
        for name, value in fresh.items():
            old = getattr(self, name)
            setattr(self, name, value if old is None else torch.cat([old, value]))
        self.rows += requests
        self.state += [CanvasRow(r, list(r.prompt_ids)) for r in requests]
        self.prompt_kv = None

    def keep(self, rows: list[int]) -> None:
        if len(rows) == len(self.rows):
            return
        self.rows, self.state = [self.rows[r] for r in rows], [self.state[r] for r in rows]
        self.prompt_kv = None
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        for name in ("canvas", "argmax", "conditioning", "conditioned", "history", "remaining"):
            setattr(self, name, getattr(self, name)[index] if rows else None)

    # ---- one step ---------------------------------------------------------------------------------
    def open_canvases(self) -> None:
        """Rows starting a canvas: encode their pending tokens, draw a random canvas, forget the last one."""
        starting = [r for r, row in enumerate(self.state) if row.starting]
        for r in starting:
            row = self.state[r]
            ids = torch.tensor(row.pending, dtype=torch.long, device=self.device)
            row.kv = self.model.encode(ids, row.kv)
            row.request.computed += len(row.pending) * len(self.model.layers)
            row.pending, row.starting, row.starting_step = [], False, True
            self.canvas[r] = random_canvas([row.request.generator], self.C, self.vocab, self.device)[0]
        if starting:
            self.prompt_kv = None
            index = torch.tensor(starting, device=self.device)
            self.conditioned[index] = False
            self.history[index] = -1
            self.remaining[index] = self.config.canvas_steps

    def step(self) -> list[StepOutput]:
        arriving, self.arriving = self.arriving, []
        if arriving:
            self.join(arriving)
        self.open_canvases()
        cfg, generators = self.config, [row.request.generator for row in self.state]
        positions = torch.stack([torch.arange(row.kv.length, row.kv.length + self.C, device=self.device)
                                 for row in self.state])
        if self.prompt_kv is None:
            self.prompt_kv = stack_prompts([row.kv for row in self.state])
        fresh = all(row.starting_step for row in self.state)   # no row has a previous prediction yet
        logits = self.model.decode(self.canvas, positions, self.prompt_kv, None if fresh else self.conditioning,
                                   None if fresh else self.conditioned)
        logits = logits / temperatures(self.remaining, cfg.canvas_steps, cfg.t_min, cfg.t_max)[:, None, None]
        proposals = sample_proposals(logits.softmax(-1, dtype=torch.float32), generators)
        self.argmax = logits.argmax(-1)
        token_entropy = entropy(logits)                                         # (B, C), for accept and stop
        accept = entropy_bound_accept(token_entropy, cfg.eb_gamma)
        noise = random_canvas(generators, self.C, self.vocab, self.device)
        self.canvas = torch.where(accept, proposals, noise)   # accepted: the proposal; the rest renoised
        stop, self.history = self.stopper(self.argmax, token_entropy, self.history)
        self.conditioning = logits.to(self.model.embed.weight.dtype)   # as the reference: in the weights' dtype
        self.conditioned = torch.ones_like(self.conditioned)
        self.remaining = self.remaining - 1
        broken = ~torch.isfinite(token_entropy).all(-1)   # logits are soft-capped: only NaN makes this non-finite
        host = torch.cat([(stop | (self.remaining == 0)).long(), broken.long(), self.argmax.flatten()]).tolist()
        self.last_step_cost = self.C * len(self.model.layers)
        return self.settle(host)

    def settle(self, host: list[int]) -> list[StepOutput]:
        """Per row after the step's one host transfer: finish canvases and rows; finished rows leave."""
        B, C = len(self.rows), self.C
        outputs, keep = [], []
        for r, row in enumerate(self.state):
            req, draft = row.request, host[2 * B + r * C: 2 * B + (r + 1) * C]
            row.nfe += 1
            row.starting_step = False
            req.computed += self.last_step_cost
            req.model_rows += 1
            out = StepOutput(req.request_id, canvas=row.generated + draft if req.stream_canvas else None)
            if host[B + r]:
                self.finish(row, out, error="the model produced non-finite logits (NaN or inf): the checkpoint's "
                                            "weights are broken or the dtype overflowed")
            elif host[r]:
                row.generated += draft
                done = self.canvas_done(row, out)
                if not done:
                    keep.append(r)
            else:
                keep.append(r)
            outputs.append(out)
        self.keep(keep)
        return outputs

    def canvas_done(self, row: CanvasRow, out: StepOutput) -> bool:
        """A canvas finished: stream it (up to EOS and gen_length); True when the row is done."""
        eos = next((i for i, t in enumerate(row.generated) if t in self.spec.eos_ids), None)
        limit = self.config.gen_length
        end = min(limit, eos if eos is not None else len(row.generated))   # the answer ends at the first EOS
        out.new_token_ids = row.generated[row.request.sent:end]
        row.request.sent = max(row.request.sent, end)
        if (eos is not None and self.config.stop_at_eos) or len(row.generated) >= limit:
            self.finish(row, out)
            return True
        row.pending, row.starting = row.generated[-self.C:], True
        return False

    def finish(self, row: CanvasRow, out: StepOutput, error: str | None = None) -> None:
        req, tokens, limit = row.request, row.generated, self.config.gen_length
        eos = next((i for i, t in enumerate(tokens) if t in self.spec.eos_ids), len(tokens))
        answer = tokens[:min(eos, limit)] if error is None else []
        reason = FinishReason.ERROR if error else FinishReason.EOS if eos < limit else FinishReason.LENGTH
        out.finished, out.error = True, error
        out.completion = Completion("", answer, row.nfe, reason.value, time.perf_counter() - req.arrived,
                                    computed=req.computed, model_rows=req.model_rows, seed=req.seed,
                                    prompt_tokens=req.prompt_length, error=error,
                                    tokens_per_forward=self.tokens_per_forward(tokens, eos, row.nfe))

    def tokens_per_forward(self, tokens: list[int], eos: int, nfe: int) -> float:
        """As transformers' `_compute_tokens_per_forward`: the generated canvases with everything after the first
        EOS padded, pad ids excluded (when the model has one), per decoder forward."""
        kept = tokens[:eos + 1] if eos < len(tokens) else tokens
        pad = self.spec.pad_id
        count = len(tokens) if pad is None else sum(t != pad for t in kept)
        return count / max(nfe, 1)
