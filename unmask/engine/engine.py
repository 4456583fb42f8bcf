"""Engine: step-level continuous batching. Requests join and leave between denoising steps.

    add_request(prompt_ids, config) → waiting queue
    step():  admit waiting requests into groups (between steps only)
             one denoising step per group (requests whose configs can share one forward)
             finished / aborted rows leave their group at once; a StepOutput per request that ran
    LLM.generate = add every prompt; while has_unfinished(): step()

A request's tokens never depend on which rows share its steps or when it joined: each row has its own
offsets, clock, generator and cache row (tested for every cache and commit rule). Thread safety: add_request
and abort may be called from any thread; step() from one thread at a time.
"""
from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn

from unmask.config import DecodeConfig
from unmask.decoding.uniform import check_uniform_config
from unmask.engine.autoregressive import ARModel
from unmask.engine.api import BATCHING, Completion, FinishReason, StepOutput
from unmask.engine.canvas_group import CanvasGroup
from unmask.engine.block_layout import check_for_model
from unmask.engine.filters import FilterLibrary
from unmask.engine.group import Group
from unmask.engine.memory import available_bytes, describe, row_bytes
from unmask.engine.request import RequestState
from unmask.engine.runner import Runner
from unmask.errors import ConfigError, RequestError
from unmask.models.spec import DiffusionSpec

MAX_SEED = 2 ** 63


@dataclass
class EngineStats:
    """Counters for /metrics: cumulative since start, plus the last step's duration."""

    finished: int = 0
    aborted: int = 0
    failed: int = 0
    nfe: int = 0
    verifier_nfe: int = 0   # forwards of the verifier model (AR-verified decoding)
    tokens: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    last_step_seconds: float = 0.0
    by_reason: dict = field(default_factory=dict)


def bucket(n: int, minimum: int = 16) -> int:
    """The prompt width of a serving group opened by a prompt of n tokens: n rounded up to a multiple of
    max(minimum, 2**(bit_length(n) - 3)), so padding costs at most 1/4 and there are four widths per octave."""
    step = max(minimum, 1 << max(0, n.bit_length() - 3))
    return -(-n // step) * step


class Engine:
    """Continuous batching over one model. `prompt_bucket`: round group prompt widths up (serving, see `bucket`),
    or use exactly the longest prompt admitted with the group (offline batches). `batching="static"` is the old
    one-batch-at-a-time pattern, kept for comparison: waiting requests are admitted only when nothing runs, and
    a batch's outputs are released together when it has finished. `compile`: run each step as one compiled
    graph, `context_len`: the longest canvas a request may have (the model's by default); see engine/runner.py."""

    def __init__(self, model: nn.Module, spec: DiffusionSpec, device: torch.device | str = "cpu", *,
                 max_running: int = 256, max_waiting: int | None = None, prompt_bucket: bool = False,
                 batching: str = "continuous", detokenize=None, compile: bool = False,
                 context_len: int | None = None, backend: str = "inductor", model_dir=None,
                 verifier: ARModel | None = None) -> None:
        if max_running < 1:
            raise ConfigError(f"max_running must be ≥ 1, got {max_running}")
        if batching not in BATCHING:
            raise ConfigError(f"batching must be one of {', '.join(BATCHING)}, got {batching!r}")
        self.batching = batching
        self.model, self.spec, self.device = model, spec, torch.device(device)
        self.max_running, self.max_waiting, self.prompt_bucket = max_running, max_waiting, prompt_bucket
        self.detokenize = detokenize
        self.runner = Runner(model, spec, device, max_running=max_running, context_len=context_len, compile=compile,
                             backend=backend)
        self.filters = FilterLibrary(model_dir)   # Learn2PD filters for commit 'learned', found beside the model
        self.verifier = verifier   # an autoregressive model for AR-verified decoding (DecodeConfig.verify)
        self.waiting: deque[RequestState] = deque()
        self.groups: list[Group] = []
        self.stats = EngineStats()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._inbox: list[RequestState] = []
        self._aborts: set[str] = set()
        self._known: set[str] = set()
        self._held: list[StepOutput] = []   # static batching: outputs waiting for their batch to end
        self.slots: dict[str, int] = {}   # running request id → its slot of the runner's K/V pool

    # ---- the API ----------------------------------------------------------------------------------
    def add_request(self, prompt_ids: list[int], config: DecodeConfig, request_id: str | None = None,
                    stream_canvas: bool = False) -> str:
        """Queue a request; returns its id. Raises RequestError (with an HTTP status) when it cannot be served."""
        if not isinstance(config, DecodeConfig):
            raise ConfigError(f"config must be a DecodeConfig, got {type(config).__name__}")
        ids = self.check_prompt(prompt_ids)
        self.check_config(config)
        total = len(ids) + config.gen_length
        if total > self.spec.context_len:
            raise RequestError(f"prompt ({len(ids)} tokens) + gen_length ({config.gen_length}) = {total} exceeds the "
                               f"model's context length {self.spec.context_len}", status=413)
        self.check_memory(len(ids), config.gen_length)
        self.runner.check_request(len(ids), config.gen_length)
        seed = config.seed if config.seed is not None else secrets.randbits(63)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with self._lock:
            if request_id is None:
                request_id = f"req-{next(self._ids)}"
            if request_id in self._known:
                raise RequestError(f"request id {request_id!r} is already in use")
            queued = len(self.waiting) + len(self._inbox)
            if self.max_waiting is not None and queued >= self.max_waiting:
                raise RequestError(f"the queue is full ({queued} requests waiting); retry later", status=503)
            self._known.add(request_id)
            self._inbox.append(RequestState(request_id, ids, config, seed, generator, stream_canvas))
        return request_id

    def abort(self, request_id: str) -> None:
        """Stop a request at the next step boundary; its slot is freed then. Unknown or finished ids are ignored."""
        with self._lock:
            if request_id in self._known:
                self._aborts.add(request_id)

    def has_unfinished(self) -> bool:
        with self._lock:
            return bool(self._inbox or self.waiting or any(self.groups))

    @property
    def num_running(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting) + len(self._inbox)

    def step(self) -> list[StepOutput]:
        """Admit, run one denoising step per group, retire. Returns one StepOutput per request touched."""
        start = time.perf_counter()
        with self._lock:
            self.waiting.extend(self._inbox)
            self._inbox.clear()
            aborts, self._aborts = self._aborts, set()
        outputs = self.apply_aborts(aborts)
        self.admit()
        stepped = []
        for group in self.groups:
            stepped += group.step()
        self.groups = [g for g in self.groups if len(g)]
        for out in outputs + stepped:
            self.account(out)
        outputs += self.release(stepped)
        elapsed = time.perf_counter() - start
        self.stats.steps += 1
        self.stats.step_seconds += elapsed
        self.stats.last_step_seconds = elapsed
        return outputs

    def release(self, stepped: list[StepOutput]) -> list[StepOutput]:
        """Continuous: every output at once. Static (the old pattern): a batch's outputs are held until the
        whole batch has finished, as when one fixed batch ran to completion before anything was returned."""
        if self.batching == "continuous":
            return stepped
        self._held += stepped
        if any(self.groups):
            return []
        held, self._held = self._held, []
        return held

    # ---- inside a step ----------------------------------------------------------------------------
    def check_config(self, config: DecodeConfig) -> None:
        """ConfigError when `config` asks for something this model cannot do: its corruption kind (uniform
        noise), its attention (block-causal blocks and the caches that serve them), a verify rule without a
        verifier model."""
        if config.verify != "none" and self.spec.corruption != "mask":
            raise ConfigError(f"verify={config.verify!r} runs on masked-diffusion models, not uniform-noise ones")
        if config.verify != "none" and self.verifier is None:
            raise ConfigError(f"verify={config.verify!r} needs a verifier model: LLM(model, verifier=...) or --verifier")
        if self.spec.corruption == "uniform":   # the canvas family's own rules, its caches and blocks included
            check_uniform_config(config, self.spec.canvas_length)
            return
        check_for_model(config, self.spec)
        self.filters.get(config)   # commit 'learned': its filter exists and loads

    def check_prompt(self, prompt_ids, allow_mask: bool = False) -> list[int]:
        """The ids as a list of ints, or RequestError naming the bad id (floats, bools, out of vocabulary)."""
        if not isinstance(prompt_ids, (list, tuple)) or not prompt_ids:
            raise RequestError("a prompt must be a non-empty list of token ids")
        vocab = self.model.cfg.vocab_size
        for t in prompt_ids:
            if isinstance(t, bool) or not isinstance(t, int):
                raise RequestError(f"token ids must be ints, got {t!r} ({type(t).__name__})")
            if not 0 <= t < vocab:
                raise RequestError(f"token id {t} is outside the vocabulary [0, {vocab})")
            if t == self.spec.mask_id and not allow_mask:
                raise RequestError(f"the prompt contains the mask token id {t}; infilling is not supported")
        return [int(t) for t in prompt_ids]

    def check_memory(self, prompt_length: int, gen_length: int) -> None:
        """Refuse (413) a request whose one row would need more memory than the device has free."""
        arch = getattr(self.model, "cfg", None)
        if arch is None:
            return
        dtype_bytes = next(self.model.parameters()).element_size()
        need = row_bytes(arch, prompt_length + gen_length, gen_length, dtype_bytes)
        free = available_bytes(self.device)
        if free is not None and need > free:
            raise RequestError(f"this request needs about {describe(need)} of memory for one forward (prompt "
                               f"{prompt_length} + gen_length {gen_length} tokens); {self.device} has "
                               f"{describe(free)} available: ask for a shorter gen_length", status=413)

    def apply_aborts(self, aborts: set[str]) -> list[StepOutput]:
        outputs = []
        if not aborts:
            return outputs
        for req in [r for r in self.waiting if r.request_id in aborts]:
            self.waiting.remove(req)
            outputs.append(self.aborted(req))
        for group in self.groups:
            outputs += [self.aborted(r) for r in group.arriving if r.request_id in aborts]
            group.arriving = [r for r in group.arriving if r.request_id not in aborts]
            keep = [i for i, r in enumerate(group.rows) if r.request_id not in aborts]
            outputs += [self.aborted(r) for r in group.rows if r.request_id in aborts]
            group.keep(keep)
        self.groups = [g for g in self.groups if len(g)]
        return outputs

    def aborted(self, req: RequestState) -> StepOutput:
        completion = Completion("", [], 0, FinishReason.ABORT.value, time.perf_counter() - req.arrived,
                                computed=req.computed, model_rows=req.model_rows,
                                cache_bytes=req.cache_bytes, seed=req.seed, prompt_tokens=req.prompt_length,
                                verifier_nfe=req.verifier_nfe, verifier_computed=req.verifier_computed)
        return StepOutput(req.request_id, finished=True, completion=completion)

    def admit(self) -> None:
        """FIFO: waiting → running while rows are free. A request that fits a running group (same key, prompt
        not wider) arrives in it at its next step, where it computes its whole canvas together with the group's
        other refreshing rows; the others open groups whose width covers every request opening them now."""
        if self.batching == "static" and any(self.groups):
            return
        opening: dict[tuple, list[RequestState]] = {}
        running = self.num_running
        while self.waiting and running < self.max_running and self.runner.has_free_slot():
            req = self.waiting.popleft()
            req.slot = self.runner.acquire()   # its K/V row in the runner's pool until it finishes
            if req.slot is not None:
                self.slots[req.request_id] = req.slot
            target = self.target_group(req)
            if target is not None:
                target.arriving.append(req)
            else:
                opening.setdefault(req.group_key, []).append(req)
            running += 1
        for requests in opening.values():
            longest = max(r.prompt_length for r in requests)
            width = min(bucket(longest), self.spec.context_len - requests[0].config.gen_length) \
                if self.prompt_bucket else longest
            kind = CanvasGroup if self.spec.attention == "encoder_canvas" else Group
            extra = {} if kind is CanvasGroup else {"learned_filter": self.filters.get(requests[0].config),
                                                    "verifier": self.verifier}
            group = kind(requests[0].config, width, self.model, self.spec, self.device, **extra)
            group.key, group.runner = requests[0].group_key, self.runner
            group.join(requests)
            self.groups.append(group)

    def target_group(self, req: RequestState) -> Group | None:
        """The narrowest running group `req` fits (same key, prompt not wider than the group's)."""
        fitting = [g for g in self.groups if g.fits(req)]
        return min(fitting, key=lambda g: g.prompt_width, default=None)

    def account(self, out: StepOutput) -> None:
        if not out.finished:
            return
        c = out.completion
        self.runner.release(self.slots.pop(out.request_id, None))
        with self._lock:
            self._known.discard(out.request_id)
        if self.detokenize is not None and c.token_ids:
            c.text = self.detokenize(c.token_ids)
        self.stats.by_reason[c.finish_reason] = self.stats.by_reason.get(c.finish_reason, 0) + 1
        if c.finish_reason == FinishReason.ABORT.value:
            self.stats.aborted += 1
        elif c.finish_reason == FinishReason.ERROR.value:
            self.stats.failed += 1
        else:
            self.stats.finished += 1
        self.stats.nfe += c.nfe
        self.stats.verifier_nfe += c.verifier_nfe
        self.stats.tokens += len(c.token_ids)
