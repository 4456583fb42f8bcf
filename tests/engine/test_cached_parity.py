"""The Fast-dLLM presets with their KV caches reproduce Fast-dLLM's own cached samplers token for token.

Oracles: tests/reference/cached_samplers.py (``generate_with_prefix_cache`` / ``generate_with_dual_cache``),
driven by tests/checkpoints.py's independent LLaDA forward with Fast-dLLM's pre-RoPE K/V cache. Temperature 0,
exact tokens, and the NFE of every row.
"""
import pytest
import torch

from checkpoints import reference_llada_forward, write_llada_checkpoint
from reference import cached_samplers
from reference.samplers import before_first_eos
from unmask import LLM, DecodeConfig

PROMPTS = torch.tensor([[5, 9, 17, 4, 22, 8], [11, 3, 30, 2, 7, 19]])
RAGGED = [[5, 9, 17, 4, 22, 8], [11, 3, 30]]
GEN, BLOCK = 32, 8  # 4 blocks

RULES = {  # id: (config overrides, reference keywords)
    "t0.9": ({"threshold": 0.9}, {"threshold": 0.9}),
    "t0.5": ({"threshold": 0.5}, {"threshold": 0.5}),
    "t0.05": ({"threshold": 0.05}, {"threshold": 0.05}),  # the refresh step fills every block: 1 NFE per block
    "factor1": ({"commit": "factor", "factor": 1.0}, {"factor": 1.0}),
    "quota1": ({"commit": "linear", "steps": 32}, {"steps": 32}),   # 8 steps per block: 1 token a step
    "quota2": ({"commit": "linear", "steps": 16}, {"steps": 16}),   # 4 steps per block: 2 tokens a step
}
CACHES = {"prefix": ("fast-dllm", cached_samplers.generate_with_prefix_cache),
          "dual": ("fast-dllm-dual", cached_samplers.generate_with_dual_cache)}


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    path = write_llada_checkpoint(tmp_path_factory.mktemp("llada"), seed=1)
    return LLM(str(path)), reference_llada_forward(path)


def ours(llm: LLM, cache: str, rule: str, prompts) -> tuple[list[list[list[int]]], list[int]]:
    """(generated region after every step, per row; NFE per row) from the preset with the cache."""
    overrides = RULES[rule][0]
    cfg = DecodeConfig.preset(CACHES[cache][0], gen_length=GEN, block_length=BLOCK, stop_at_eos=False, **overrides)
    history, last = [], {}

    def record(outputs):  # a finished row keeps its last canvas while the others run on
        last.update((o.request_id, o.canvas) for o in outputs)
        history.append(torch.tensor([last[k] for k in sorted(last, key=lambda k: int(k.split("-")[1]))]))

    out = llm.generate(prompts, cfg, on_step=record)
    steps = torch.stack(history, 1).tolist()  # (B, steps, G)
    return steps, [c.nfe for c in out]


def reference(fwd, llm: LLM, cache: str, rule: str, prompt: torch.Tensor):
    """(generated region after every step (B, steps, G), NFE) of the Fast-dLLM cached sampler."""
    kw = dict(RULES[rule][1])
    history = []
    x, nfe = CACHES[cache][1](fwd, prompt, kw.pop("steps", GEN // BLOCK), GEN, BLOCK, mask_id=llm.spec.mask_id,
                              history=history, **kw)
    assert torch.equal(history[-1], x)
    return torch.stack(history, 1)[:, :, prompt.shape[1]:].tolist(), nfe


def test_cached_reference_forward_is_exact_with_fresh_kv(llada):
    """The reference cache mechanism: with K/V of the same sequence, a partial forward equals the full one."""
    _, fwd = llada
    x = torch.cat([PROMPTS, torch.randint(0, 60, (2, GEN))], 1)
    full = fwd(x)
    for start, end in ((6, x.shape[1]), (14, 22)):
        kv: list = []
        fwd(x, kv)
        kv_prefix = [(k[:, :, :start], v[:, :, :start]) for k, v in kv] if end == x.shape[1] else kv
        part = fwd(x[:, start:end], kv_prefix, start)
        torch.testing.assert_close(part, full[:, start:end], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("cache", list(CACHES))
def test_batch1_matches_step_for_step(llada, cache, rule):
    llm, fwd = llada
    for row in range(2):
        prompt = PROMPTS[row:row + 1]
        ref_steps, ref_nfe = reference(fwd, llm, cache, rule, prompt)
        steps, nfe = ours(llm, cache, rule, prompt.tolist())
        assert steps == ref_steps  # every intermediate canvas, hence the same tokens and the same NFE
        assert nfe == [ref_nfe] == [len(ref_steps[0])]


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("cache", list(CACHES))
def test_batch2_matches(llada, cache, rule):
    """Equal-length batch: final tokens equal the lockstep batch reference; each row's NFE equals the reference
    run on that row alone (the reference advances the batch in lockstep, so its NFE is per batch: for each block,
    the slowest row's steps; unmask advances each row on its own)."""
    llm, fwd = llada
    ref_steps, ref_nfe = reference(fwd, llm, cache, rule, PROMPTS)
    steps, nfe = ours(llm, cache, rule, PROMPTS.tolist())
    assert [row[-1] for row in steps] == [row[-1] for row in ref_steps]
    alone = [reference(fwd, llm, cache, rule, PROMPTS[r:r + 1])[1] for r in range(2)]
    assert nfe == alone
    assert max(nfe) <= ref_nfe


@pytest.mark.parametrize("rule", ["t0.9", "quota2"])
@pytest.mark.parametrize("cache", list(CACHES))
def test_ragged_batch_matches_rows_alone(llada, cache, rule):
    """Different prompt lengths (left padding, which the reference cannot express): each row gets the tokens and
    NFE of the reference run on that prompt alone."""
    llm, fwd = llada
    steps, nfe = ours(llm, cache, rule, RAGGED)
    for row, prompt in enumerate(RAGGED):
        ref_steps, ref_nfe = reference(fwd, llm, cache, rule, torch.tensor([prompt]))
        assert steps[row][-1] == ref_steps[0][-1]
        assert nfe[row] == ref_nfe


@pytest.mark.parametrize("rule", ["t0.9", "quota2"])
@pytest.mark.parametrize("cache", list(CACHES))
def test_guidance_reuses_the_unconditional_rows_own_kv(llada, cache, rule):
    """cfg_scale > 0 with a K/V cache: the unconditional copy of each row reuses K/V of its own (prompt masked)
    across the block's steps. Equals the cached reference loop with CFG on every forward, step for step; a
    copy that read the main row's K/V would differ."""
    llm, fwd = llada
    overrides = RULES[rule][0]
    cfg = DecodeConfig.preset(CACHES[cache][0], gen_length=GEN, block_length=BLOCK, stop_at_eos=False,
                              cfg_scale=1.0, **overrides)
    for row in range(2):
        prompt = PROMPTS[row:row + 1]
        kw = dict(RULES[rule][1])
        x, ref_nfe = CACHES[cache][1](fwd, prompt, kw.pop("steps", GEN // BLOCK), GEN, BLOCK,
                                      mask_id=llm.spec.mask_id, cfg_scale=1.0, **kw)
        got = llm.generate(prompt.tolist(), cfg)[0]
        assert got.token_ids == before_first_eos(x[:, prompt.shape[1]:], llm.spec.eos_ids)[0]
        assert got.nfe == ref_nfe and got.model_rows == 2 * ref_nfe
    together = llm.generate(RAGGED, cfg)
    assert [c.token_ids for c in together] == [llm.generate([p], cfg)[0].token_ids for p in RAGGED]
