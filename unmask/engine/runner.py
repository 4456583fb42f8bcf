"""The runner: how a group's step runs (eager, or compiled into one graph), sized and bounded up front.

    runner = Runner(model, spec, max_running=16, context_len=256, compile=True)   # refuses what cannot fit
    model, core = runner.functions(parts)                # per group: the eager model and None, or compiled ones
    plan, broken = denoise_step(model, canvas, state, parts, core)

* **Sized up front.** The batch buckets (powers of two up to `max_running`), the context length (the longest
  canvas a row may have) and the K/V bytes of `max_running` rows of that context are fixed when the engine
  starts; an engine whose K/V cannot fit the device's free memory is refused then, and a request longer than
  the context or a group wider than the largest bucket is refused before it runs, with a message.
* **Shapes from buckets.** A step's shapes are (rows, query length): the query length is one of a small set
  per cache kind (`query_lengths`: `none` the canvas, `prefix` the canvas from each block on, `dual` one
  block), and rows fall in the batch buckets. On the CPU a graph compiled with the batch dimension dynamic
  runs as fast as one compiled per bucket (bench/step_time.py), so the batch is left dynamic there; CUDA graphs
  (issue 16, part B) need one captured graph per bucket.
* **K/V slot pool and static input buffers.** `pool` (cache/kv_pool.py): per layer K and V of `max_running`
  slots × the context; the engine gives each admitted request a slot (`acquire`, `release` at its end) and
  `bind` hands a group's cache its rows' slots before each step, so joins, leaves, splits and merges move slot
  numbers, not K/V. `buffers` (engine/buffers.py): the step's ids, positions and logit rows are written in place
  into per-bucket buffers, fixed addresses step after step (what CUDA graphs replay). docs/runner.md.
* **One graph per step.** With `compile`, the step's device work (the forward, fusion, token sampler, scores
  and the commit decision: `engine.step.forward_and_decide`) is compiled with `fullgraph=True`, so any graph
  break is an error instead of a silent split, and nothing in it syncs with the host (the step's one sync,
  the stop check, stays in `Group.step_rows`). A part that dynamo cannot capture (per-row `torch.Generator`
  draws: temperature > 0, top-p/top-k sampling, ReMDM) makes that configuration fall back, once and visibly
  (`Runner.fallbacks`, a warning), to the eager decision around a compiled forward; guidance and WINO's
  shadow block build their own forward rows, and an AR verifier reads its own model on the host, so those run
  the compiled forward alone.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from unmask.cache.base import Cache
from unmask.cache.kv_pool import KVPool
from unmask.engine.buffers import StepBuffers
from unmask.engine.memory import available_bytes, describe
from unmask.engine.step import decide, forward, forward_and_decide
from unmask.errors import ConfigError, RequestError
from unmask.models.spec import DiffusionSpec

RECOMPILE_LIMIT = 256   # graphs of the step function: (query length × cache branch) per configuration


@dataclass(frozen=True)
class Buckets:
    """Row counts a step may have, smallest first; the last is `max_running`."""

    batch: tuple[int, ...]

    @classmethod
    def up_to(cls, max_rows: int) -> "Buckets":
        sizes, n = [], 1
        while n < max_rows:
            sizes.append(n)
            n *= 2
        return cls(tuple(sizes) + (max_rows,))

    def batch_bucket(self, rows: int) -> int:
        """The smallest bucket holding `rows`; ConfigError when none does."""
        for size in self.batch:
            if rows <= size:
                return size
        raise ConfigError(f"a step of {rows} rows does not fit the runner, sized for at most {self.batch[-1]} "
                          f"(max_running); raise --max-running")


def query_lengths(cache: str, prompt_width: int, gen_length: int, block_length: int, logit_shift: int
                  ) -> tuple[int, ...] | None:
    """The query lengths a group's steps can take under `cache` (its canvas is prompt_width + gen_length):
    `none` always the canvas; `prefix` the canvas (refresh) or the canvas from the current block on; `dual` the
    canvas or one block (+ the position before it for shifted logits). None for caches whose query length
    depends on the data (`feature`, `d2`, `elastic`, …): they run as many shapes as the data makes."""
    L = prompt_width + gen_length
    if cache == "none":
        return (L,)
    starts = range(0, gen_length, block_length)
    if cache == "prefix":
        return tuple(sorted({L} | {L - (prompt_width + s - logit_shift) for s in starts}))
    if cache == "dual":
        return (min(block_length, gen_length) + logit_shift, L)
    return None


def kv_bytes(arch, rows: int, length: int, dtype_bytes: int) -> int:
    """K and V of every layer for `rows` rows of `length` positions (what a K/V cache holds at most)."""
    return 2 * arch.n_layers * rows * length * arch.n_kv_heads * arch.head_dim * dtype_bytes


@functools.lru_cache(maxsize=None)
def check_compiler(device: torch.device) -> None:
    """Compile and run a tiny function now (once per device), so that a missing compiler or backend fails at
    start-up with one message rather than inside the first request."""
    try:
        probe = torch.compile(lambda x: (x * 2).softmax(-1).argmax(-1), fullgraph=True)
        probe(torch.ones(2, 3, device=device))
    except Exception as e:   # noqa: BLE001 — any backend failure becomes one clear error
        raise ConfigError(f"torch.compile failed on this machine ({type(e).__name__}: {str(e)[:300]}); "
                          f"run without --compile") from None


def uncaptured() -> tuple[type[Exception], ...]:
    """A graph break under fullgraph=True, or more graphs than RECOMPILE_LIMIT: both raised before the step runs.
    (torch._dynamo is imported only here and when compiling: importing it costs seconds at start-up.)"""
    import torch._dynamo as dynamo
    return dynamo.exc.Unsupported, dynamo.exc.FailOnRecompileLimitHit


class Runner:
    """Runs the steps of every group of one engine; see the module docstring. `backend`: torch.compile's
    ("eager" captures the graphs without generating code: the tests use it to check capture and tokens fast)."""

    def __init__(self, model: nn.Module, spec: DiffusionSpec, device: torch.device | str = "cpu", *,
                 max_running: int = 256, context_len: int | None = None, compile: bool = False,
                 backend: str = "inductor") -> None:
        if max_running < 1:
            raise ConfigError(f"max_running must be ≥ 1, got {max_running}")
        if context_len is not None and not 0 < context_len <= spec.context_len:
            raise ConfigError(f"the runner's context length must be in [1, {spec.context_len}] (the model's), "
                              f"got {context_len}")
        self.model, self.spec, self.device = model, spec, torch.device(device)
        self.buckets = Buckets.up_to(max_running)
        self.context_len = context_len or spec.context_len
        self.compile = compile
        self.kv_bytes = self.check_memory(context_len is not None)
        self.pool = self.make_pool(context_len is not None)
        self.buffers = StepBuffers(self.context_len, self.device)
        self.fallbacks: dict[tuple, str] = {}   # configuration → why its step is not one graph
        self._step: Callable | None = None
        self._forward: nn.Module | None = None
        if compile:
            if spec.attention == "encoder_canvas":
                raise ConfigError("--compile compiles the step of LLaDA, Dream and the block-diffusion families; "
                                  "an encoder–canvas model (DiffusionGemma) runs eagerly: drop --compile")
            check_compiler(self.device)
            import torch._dynamo as dynamo
            dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, RECOMPILE_LIMIT)
            self._step = torch.compile(forward_and_decide, fullgraph=True, backend=backend)
            self._forward = torch.compile(model, backend=backend)

    # ---- sizing -----------------------------------------------------------------------------------
    def check_memory(self, strict: bool) -> int | None:
        """K/V bytes of the largest bucket at the context length. Refused (ConfigError) when they exceed the
        device's free memory; only an explicit context length is held to it (the model's own context, e.g.
        LLaDA's 4,096, is the default and rarely fills)."""
        arch = getattr(self.model, "cfg", None)
        params = list(self.model.parameters())
        if arch is None or not hasattr(arch, "n_kv_heads") or not params:
            return None
        need = kv_bytes(arch, self.buckets.batch[-1], self.context_len, params[0].element_size())
        free = available_bytes(self.device)
        if strict and free is not None and need > free:
            raise ConfigError(f"the runner's K/V for {self.buckets.batch[-1]} rows (max_running) × {self.context_len} "
                              f"positions needs {describe(need)}; {self.device} has {describe(free)} available: "
                              f"lower --max-running or --max-context")
        return need

    def make_pool(self, explicit: bool) -> KVPool | None:
        """The K/V slot pool: `max_running` slots × the context length, per layer (allocated on its first write).
        None for models without a decoder K/V layout (encoder–canvas), and when the context is the model's own
        (not given) and the pool would take more than half the free memory (e.g. LLaDA-8B's 4,096 positions ×
        256 rows = 512 GiB): then each group's cache keeps its own K/V (`pool_note` says why)."""
        arch = getattr(self.model, "cfg", None)
        self.pool_note = ""
        if self.kv_bytes is None or self.spec.attention == "encoder_canvas":
            self.pool_note = "this model has no decoder K/V layout"
            return None
        free = available_bytes(self.device)
        if not explicit and (free is None or 2 * self.kv_bytes > free):
            self.pool_note = (f"the pool for the model's context ({self.context_len}) × {self.buckets.batch[-1]} rows "
                              f"needs {describe(self.kv_bytes)}: set the context length (--max-context) to use it")
            return None
        dtype = next(self.model.parameters()).dtype
        return KVPool(arch.n_layers, self.buckets.batch[-1], arch.n_kv_heads, self.context_len, arch.head_dim,
                      dtype, self.device)

    # ---- slots ------------------------------------------------------------------------------------
    def has_free_slot(self) -> bool:
        return self.pool is None or bool(self.pool.free)

    def acquire(self) -> int | None:
        """A free slot of the pool for a request being admitted (None without a pool)."""
        if self.pool is None:
            return None
        slot = self.pool.acquire()
        if slot is None:
            raise RuntimeError("no free K/V slot: admit only while has_free_slot()")
        return slot

    def release(self, slot: int | None) -> None:
        if self.pool is not None and slot is not None:
            self.pool.release(slot)

    def bind(self, cache: Cache, slots: list[int | None]) -> None:
        """Before a step: the cache keeps its rows' K/V in the pool rows `slots` (one per row, in row order)."""
        if self.pool is not None:
            cache.use_pool(self.pool, slots)

    def check_request(self, prompt_length: int, gen_length: int) -> None:
        """RequestError (413) when a request's canvas is longer than the runner's context."""
        total = prompt_length + gen_length
        if total > self.context_len:
            raise RequestError(f"prompt ({prompt_length} tokens) + gen_length ({gen_length}) = {total} exceeds the "
                               f"runner's context length {self.context_len} (--max-context)", status=413)

    def check_rows(self, rows: int) -> int:
        """The bucket of a step of `rows` rows (ConfigError beyond the largest)."""
        return self.buckets.batch_bucket(rows)

    # ---- the step ---------------------------------------------------------------------------------
    def functions(self, parts) -> tuple[nn.Module, Callable | None]:
        """(the model the step's own forwards run, the `core` of a plain step) for a group with `parts`.

        Eager: (the model, the eager step on the static input buffers). Compiled: the whole plain step as one
        graph; a configuration dynamo cannot capture gets the eager decision around the compiled forward; steps
        that build their own forward rows
        (guidance's copies, WINO's shadow block) run the compiled forward (all recorded in `fallbacks`)."""
        if not self.compile:
            return self.model, self.eager_step
        key = configuration(parts)
        if parts.latent is not None:
            self.fallbacks.setdefault(key, "a λ-conditioned model: each step draws λ per row from the rows' "
                                           "generators, then runs the compiled forward")
            return self._forward, None
        if parts.guidance is not None or parts.remask.shadow or parts.verify is not None:
            self.fallbacks.setdefault(key, "guidance, a shadow block or an AR verifier: the step runs its own "
                                           "forwards (the verifier's on the host)")
            return self._forward, None
        if key in self.fallbacks:
            return self.model, self.forward_only

        def step(model, canvas, state, plan, window, parts):
            inputs = self.step_inputs(canvas, state, plan)
            try:
                return self._step(model, canvas, state, plan, window, parts, inputs)
            except uncaptured() as e:   # raised while tracing: nothing of the step ran yet
                reason = str(e).splitlines()[0][:200]
                self.fallbacks[key] = reason
                warnings.warn(f"the step of {'/'.join(map(str, key))} cannot be compiled as one graph ({reason}); "
                              f"it runs a compiled forward and an eager decision", stacklevel=2)
                return self.forward_only(model, canvas, state, plan, window, parts)
        return self.model, step

    def forward_only(self, model, canvas, state, plan, window, parts):
        inputs = self.step_inputs(canvas, state, plan)
        return decide(forward(self._forward, canvas, state, plan, inputs), plan.predicts, window, state, parts,
                      canvas=canvas)

    def step_inputs(self, canvas, state, plan):
        """The forward's inputs in the static buffers of the step's batch bucket (ConfigError beyond the largest)."""
        return self.buffers.inputs(canvas, state, plan, self.check_rows(state.batch))

    def eager_step(self, model, canvas, state, plan, window, parts):
        """The plain step eagerly, its inputs in the static buffers (a step wider than the largest bucket is
        refused)."""
        return forward_and_decide(model, canvas, state, plan, window, parts, self.step_inputs(canvas, state, plan))


def configuration(parts) -> tuple:
    """What decides whether a step can be one graph: the classes of its parts and whether it samples."""
    random = parts.sampler.temperature > 0
    return (type(parts.cache).__name__, type(parts.commit).__name__, type(parts.score).__name__,
            type(parts.fusion).__name__, type(parts.remask).__name__, "eotp" if parts.eotp is not None else "",
            type(parts.verify.rule).__name__ if parts.verify is not None else "",
            "latent" if parts.latent is not None else "", "sampled" if random else "argmax",
            "guided" if parts.guidance is not None else "unguided")
