"""Plain greedy AR decoding with the per-row KV cache equals a direct re-implementation (recompute every token)."""
import torch

from unmask.engine.autoregressive import ARModel, greedy
from unmask.models.block_mask import pattern_mask
from unmask.models.cache_view import MaskView
from tiny_models import write_tiny_model


def direct_greedy(ar: ARModel, prompt: list[int], max_new: int) -> list[int]:
    """The whole sequence through the model again for every token, under a causal mask."""
    seq, out = list(prompt), []
    for _ in range(max_new):
        x = torch.tensor([seq])
        pos = torch.arange(len(seq))[None]
        mask = pattern_mask(torch.ones_like(x, dtype=torch.bool), pos, "block_causal:1")
        token = int(ar.model(x, pos, MaskView(mask))[0, -1].argmax())
        out.append(token)
        seq.append(token)
        if token in ar.spec.eos_ids:
            break
    return out


def test_cached_greedy_equals_the_direct_reimplementation_in_a_ragged_batch(tmp_path):
    ar, _ = ARModel.load(write_tiny_model(tmp_path, "llada", seed=5, is_causal=True), torch.device("cpu"),
                         torch.float32)
    prompts = [[5, 9, 12, 30, 7], [40], [8, 8, 8, 21, 22, 23, 24, 25, 26]]
    with torch.inference_mode():
        expected = [direct_greedy(ar, p, 12) for p in prompts]
        got = greedy(ar, prompts, 12)
    assert [ids for ids, _ in got] == expected
    assert [n for _, n in got] == [len(e) for e in expected]     # one forward per generated token


def test_the_shipped_model_decodes_test_problems():
    """tiny-arith-ar, loaded by name, answers held-out arith problems with plain greedy decoding."""
    from unmask.bench.tasks import get_task

    ar, tokenizer = ARModel.load("tiny-arith-ar", torch.device("cpu"), torch.float32)
    task = get_task("arith", size={"train": 60000, "test": 500})
    examples = task.examples("test", 50)
    prompts = [tokenizer.encode(task.prompt(ex), add_special_tokens=False) for ex in examples]
    outs = greedy(ar, prompts, task.gen_length)
    correct = sum(task.score(ex, tokenizer.decode([t for t in ids if t not in ar.spec.eos_ids]))
                  for ex, (ids, _) in zip(examples, outs))
    assert correct >= 45
