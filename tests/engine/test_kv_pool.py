"""The runner's K/V slot pool (cache/kv_pool.py) and static input buffers (engine/buffers.py).

A request holds one slot (a row of every layer's pooled K and V) from admission to finish; groups name their
rows' K/V by slot, so joins, leaves, splits and merges move slot numbers and never K/V. The step's inputs are
written into per-bucket buffers whose storage stays put from step to step."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cache"))
sys.path.insert(0, str(Path(__file__).parent))
from cache_tiny import tiny  # noqa: E402
from test_engine_invariance import LATE, OTHERS, run  # noqa: E402

from unmask.cache.base import concat, take  # noqa: E402
from unmask.cache.kv_pool import KVPool, Slots  # noqa: E402
from unmask.cache.kv_store import KVStore  # noqa: E402
from unmask.config import DecodeConfig  # noqa: E402
from unmask.engine import runner as runner_module  # noqa: E402
from unmask.engine.engine import Engine  # noqa: E402
from unmask.engine.runner import Runner  # noqa: E402

CPU = torch.device("cpu")
BASE = dict(gen_length=16, block_length=8, stop_at_eos=False)
POOLED = [("prefix", {"threshold": 0.3, "commit": "threshold"}), ("dual", {"steps": 16}),
          ("delayed", {"steps": 16}), ("d2", {"steps": 16})]


@pytest.fixture(scope="module", params=["llada", "dream"])
def net(request):
    return tiny(request.param)


def cfg(cache: str, **knobs) -> DecodeConfig:
    return DecodeConfig(**BASE, cache=cache, **knobs)


def pool_state(pool: KVPool) -> list[torch.Tensor]:
    return [t.clone() for t in pool.keys + pool.values]


def same_bytes(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Bitwise equal (slots never acquired hold whatever memory was there, NaN patterns included)."""
    return all(torch.equal(x.flatten().view(torch.uint8), y.flatten().view(torch.uint8)) for x, y in zip(a, b))


def addresses(pool: KVPool) -> list[int]:
    return [t.data_ptr() for t in pool.keys + pool.values]


# ---- the pool and the store, alone ----------------------------------------------------------------
def test_slots_are_lowest_first_and_reused_after_release():
    pool = KVPool(n_layers=2, slots=3, n_kv_heads=2, context=8, head_dim=4)
    assert pool.nbytes == 2 * 2 * 3 * 2 * 8 * 4 * 4 and not pool.allocated
    assert (pool.acquire(), pool.acquire()) == (0, 1)
    pool.release(0)
    assert pool.acquire() == 0                                    # the freed slot is the next one handed out
    assert pool.acquire() == 2 and pool.acquire() is None
    with pytest.raises(RuntimeError, match="not held"):
        pool.release(7)


def test_a_row_joining_a_pooled_store_reads_zeros_like_a_new_own_row():
    """A freed slot still holds its last request's K/V; a row that joins a store holding K/V gets its canvas
    zeroed when its slot is bound, as `take` gives a new row of a store with its own tensors."""
    pool = KVPool(n_layers=1, slots=3, n_kv_heads=2, context=8, head_dim=4)
    slots = [pool.acquire(), pool.acquire()]
    own, pooled = KVStore(), KVStore()
    pooled.bind(pool, slots)
    k, v = torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    own.write(0, k, v, None, None)
    pooled.write(0, k, v, None, None)
    pool.release(slots[1])                                        # its K/V stay in the pool
    own, pooled = take(own, [0, -1]), take(pooled, [0, -1])
    pooled.bind(pool, [slots[0], pool.acquire()])                 # the same slot again, for a new row
    assert torch.equal(pool.keys[0][slots[1], :, :6], torch.zeros(2, 6, 4))
    compute, write = torch.tensor([[1, 2], [3, 4]]), torch.tensor([[True, False], [True, True]])
    k, v = torch.randn(2, 2, 2, 4), torch.randn(2, 2, 2, 4)
    assert all(torch.equal(a, b) for a, b in zip(own.write(0, k, v, compute, write),
                                                pooled.write(0, k, v, compute, write)))


@pytest.mark.parametrize("slots", [[1, 2, 3], [3, 0, 2]], ids=["a run (views)", "scattered (gathers)"])
def test_a_pooled_store_returns_and_keeps_what_its_own_store_does(slots):
    """Full forwards, full forwards writing some rows, partial forwards with and without write masks: the pooled
    store returns the same K/V as a store with its own tensors, its slots hold them, other slots are untouched."""
    g = torch.Generator().manual_seed(0)
    B, H, L, D = 3, 2, 10, 4
    pool = KVPool(n_layers=1, slots=5, n_kv_heads=H, context=12, head_dim=D)
    held = [pool.acquire() for _ in range(5)]
    assert held == [0, 1, 2, 3, 4]
    own, pooled = KVStore(), KVStore()
    pooled.bind(pool, slots)
    fresh = lambda Q: (torch.randn(B, H, Q, D, generator=g), torch.randn(B, H, Q, D, generator=g))  # noqa: E731
    k, v = fresh(L)
    writes = [(None, None)]
    writes.append((torch.stack([torch.randperm(L, generator=g)[:4].sort().values for _ in range(B)]),
                   torch.rand(B, 4, generator=g) > 0.5))
    writes.append((torch.stack([torch.randperm(L, generator=g)[:3].sort().values for _ in range(B)]), None))
    writes.append((None, torch.rand(B, L, generator=g) > 0.5))
    other = torch.full((H, 12, D), 7.0)
    pool.allocate(torch.float32)
    pool.keys[0][4] = other   # slot 4 belongs to no row of this store
    for compute, write in writes:
        k, v = fresh(L if compute is None else compute.shape[1])
        want = own.write(0, k, v, compute, write)
        got = pooled.write(0, k.clone(), v.clone(), compute, write)
        assert all(torch.equal(a, b) for a, b in zip(want, got))
        index = torch.tensor(slots)
        assert torch.equal(pool.keys[0][index, :, :L], own.keys[0])
        assert torch.equal(pool.values[0][index, :, :L], own.values[0])
        assert torch.equal(pool.keys[0][4], other)
    assert pooled.nbytes() == own.nbytes() and bool(pooled)


def test_take_and_concat_of_a_pooled_store_move_slot_numbers_not_kv():
    pool = KVPool(n_layers=2, slots=4, n_kv_heads=2, context=6, head_dim=3)
    slots = [pool.acquire() for _ in range(3)]
    store = KVStore()
    store.bind(pool, slots)
    for layer in range(2):
        store.write(layer, torch.randn(3, 2, 6, 3), torch.randn(3, 2, 6, 3), None, None)
    before, where = pool_state(pool), addresses(pool)
    kept = take(store, [2, 0, -1])
    both = concat(kept, take(store, [1]))
    assert kept.slots == [2, 0, -1] and both.slots == [2, 0, -1, 1]
    assert not kept.keys and not both.keys                          # no tensors of their own
    assert addresses(pool) == where and same_bytes(before, pool_state(pool))


# ---- through the engine ---------------------------------------------------------------------------
def test_the_runner_sizes_the_pool_up_front(net, monkeypatch):
    model, spec = net
    runner = Runner(model, spec, max_running=4, context_len=40)
    arch = model.cfg
    assert runner.pool.shape == (4, arch.n_kv_heads, 40, arch.head_dim)
    assert runner.pool.nbytes == runner.kv_bytes and not runner.pool.allocated
    monkeypatch.setattr(runner_module, "available_bytes", lambda device: runner.kv_bytes)   # just fits
    assert Runner(model, spec, max_running=4, context_len=40).pool is not None
    # the model's own context, not asked for: no pool when it would take over half the free memory
    implicit = Runner(model, spec, max_running=4)
    assert implicit.pool is None and "--max-context" in implicit.pool_note


@pytest.mark.parametrize("cache,knobs", POOLED, ids=[c for c, _ in POOLED])
def test_staggered_requests_through_two_slots_give_their_alone_tokens(net, cache, knobs):
    """Two slots, five requests (one arriving later): they queue, take freed slots, and each gets the tokens it
    gets alone; slots are reused, the pool never moves and no cache row holds K/V of its own."""
    model, spec = net
    config = cfg(cache, **knobs)
    requests = [(p, config) for p in OTHERS]
    alone = [run(Engine(model, spec), [r])[0] for r in requests + [(LATE, config)]]
    engine = Engine(model, spec, max_running=2, context_len=40)
    pool, seen, where = engine.runner.pool, set(), []
    original = engine.step

    def step():
        outputs = original()
        seen.update(engine.slots.values())
        if pool.allocated:
            where.append(addresses(pool))
        for group in engine.groups:
            store = group.parts.cache.store
            assert not store.keys and store.pool is pool and store.slots == [r.slot for r in group.rows]
        assert engine.num_running <= 2
        return outputs

    engine.step = step
    got = run(engine, requests, late=(LATE, config), join_at=2)
    assert got == alone
    assert seen == {0, 1} and len({tuple(w) for w in where}) == 1
    assert pool.held == set() and pool.free == [0, 1] and engine.slots == {}


def test_exhausted_slots_queue_the_rest_until_slots_free(net):
    model, spec = net
    config = cfg("prefix", threshold=0.3, commit="threshold")
    engine = Engine(model, spec, max_running=2, context_len=40)
    ids = [engine.add_request(p, config) for p in OTHERS + [LATE, OTHERS[0]]]
    with torch.inference_mode():
        engine.step()
        assert (engine.num_running, engine.num_waiting, engine.runner.pool.free) == (2, 3, [])
        done = {}
        while engine.has_unfinished():
            done.update((o.request_id, o.completion.token_ids) for o in engine.step() if o.finished)
    alone = [run(Engine(model, spec), [(p, config)])[0][0] for p in OTHERS + [LATE, OTHERS[0]]]
    assert [done[i] for i in ids] == alone


def test_a_split_and_merge_move_no_kv_bytes(net):
    """A group split (rows opening a block refresh apart) and merged back: the pool's tensors and bytes are
    untouched by both, the rows keep their slots, and decoding goes on to the alone tokens."""
    model, spec = net
    config = cfg("dual", steps=16)
    engine = Engine(model, spec, max_running=4, context_len=40)
    ids = [engine.add_request(p, config) for p in OTHERS]
    done = {}
    with torch.inference_mode():
        for _ in range(3):
            engine.step()
        (group,) = engine.groups
        slots = [r.slot for r in group.rows]
        before, where = pool_state(engine.runner.pool), addresses(engine.runner.pool)
        part = group.split([0, 2])
        assert part.parts.cache.store.slots == [slots[0], slots[2]] and group.parts.cache.store.slots == [slots[1]]
        group.merge(part)   # rows come back in slot order (a permutation of slot numbers, no K/V)
        assert group.parts.cache.store.slots == [r.slot for r in group.rows] == sorted(slots)
        assert addresses(engine.runner.pool) == where
        assert same_bytes(before, pool_state(engine.runner.pool))
        while engine.has_unfinished():
            done.update((o.request_id, o.completion.token_ids) for o in engine.step() if o.finished)
    assert [done[i] for i in ids] == [run(Engine(model, spec), [(p, config)])[0][0] for p in OTHERS]


def test_elastic_keeps_its_own_kv(net):
    model, spec = net
    engine = Engine(model, spec, max_running=2, context_len=40)
    config = cfg("elastic", steps=16)
    got = run(engine, [(OTHERS[0], config)])
    assert not engine.runner.pool.allocated            # its K/V stayed in its own tensors
    assert got == run(Engine(model, spec, context_len=40), [(OTHERS[0], config)])


# ---- static input buffers -------------------------------------------------------------------------
class PlainRunner(Runner):
    """The runner without buffers: the step builds fresh input tensors (the path before them)."""

    def functions(self, parts):
        return self.model, None


@pytest.mark.parametrize("cache,knobs", [("none", {"steps": 16}),
                                         ("prefix", {"threshold": 0.3, "commit": "threshold"})])
def test_steps_read_their_inputs_from_the_same_buffers(net, cache, knobs):
    model, spec = net
    config = cfg(cache, **knobs)
    engine = Engine(model, spec, max_running=4, context_len=40)
    seen = []
    forward = model.forward

    def recording(input_ids, positions, view=None, logits_at=None):
        seen.append((input_ids.shape[0], input_ids.data_ptr(), positions.data_ptr(), logits_at.data_ptr()))
        return forward(input_ids, positions, view, logits_at)

    model.forward = recording
    try:
        got = run(engine, [(p, config) for p in OTHERS])
    finally:
        del model.forward
    buffers = engine.runner.buffers.addresses()
    assert len(seen) > 3 and {rows for rows, *_ in seen} <= {1, 2, 3}
    for rows, ids, positions, logits_at in seen:
        bucket = engine.runner.check_rows(rows)
        assert (ids, positions, logits_at) == tuple(buffers[(bucket, n)] for n in ("ids", "positions", "logits_at"))
    plain = Engine(model, spec, max_running=4, context_len=40)
    plain.runner = PlainRunner(model, spec, max_running=4, context_len=40)
    assert got == run(plain, [(p, config) for p in OTHERS])
