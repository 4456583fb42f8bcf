"""Token batches for masked-diffusion SFT (LLaDA, arXiv 2502.09992 §2.3) from the built-in bench tasks.

One example = prompt ids (`task.prompt(ex)`, char tokenizer) + answer ids padded with EOS to the task's
`gen_length`, so the model learns to end (the loss covers that EOS padding too). A batch is laid out
exactly like the engine's canvas at inference: prompts LEFT-padded with `pad_id` to the longest prompt
of the batch, the generation region right after each prompt, pad keys hidden by a key mask, and
positions = cumsum(key_mask) - 1 (0 at each row's first real token).

The order of examples is a pure function of (seed, step): `BatchStream.batch(step)` draws from one
seeded permutation per epoch, so a resumed run sees exactly the data of an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer
from torch import Tensor

from unmask.bench.tasks import Task
from unmask.errors import ConfigError
from unmask.models.cache_view import positions_from_mask
from unmask.train.char_tokenizer import EOS_ID, PAD_ID, UNK_ID, build_char_tokenizer

Pair = tuple[list[int], list[int]]  # (prompt ids, answer ids already EOS-padded to gen_length)


@dataclass(frozen=True)
class Batch:
    """One left-padded SFT batch; L = longest prompt in the batch + gen_length."""

    input_ids: Tensor    # (B, L) long: pad … prompt, answer, EOS … EOS
    key_mask: Tensor     # (B, L) bool: False on left padding (never attended to)
    positions: Tensor    # (B, L) long: 0 at each row's first real token
    answer_mask: Tensor  # (B, L) bool: True on the generation region (the only maskable positions)

    @property
    def answer_start(self) -> int:
        """First column of the generation region (the same in every row: prompts are left-padded)."""
        return self.answer_mask.shape[1] - int(self.answer_mask[0].sum())

    @property
    def answer_lengths(self) -> Tensor:
        """(B,) long: maskable positions per row (= gen_length, the EOS padding included)."""
        return self.answer_mask.sum(-1)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device) for t in (self.input_ids, self.key_mask, self.positions, self.answer_mask)))


def encode_text(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if UNK_ID in ids:
        raise ConfigError(f"{what} {text!r} has characters outside the tokenizer's alphabet")
    return ids


def encode_examples(task: Task, split: str, n: int | None = None,
                    tokenizer: Tokenizer | None = None) -> list[Pair]:
    """(prompt ids, answer ids + EOS padding to task.gen_length) for the first `n` examples of `split`."""
    tokenizer = tokenizer or build_char_tokenizer()
    pairs = []
    for ex in task.examples(split, n):
        prompt = encode_text(tokenizer, task.prompt(ex), "prompt")
        answer = encode_text(tokenizer, ex.answer, "answer")
        if len(answer) > task.gen_length:
            raise ConfigError(f"{task.name}: answer of {len(answer)} tokens exceeds gen_length {task.gen_length}")
        pairs.append((prompt, answer + [EOS_ID] * (task.gen_length - len(answer))))
    if not pairs:
        raise ConfigError(f"{task.name}: the {split} split is empty")
    return pairs


def collate(pairs: list[Pair], pad_id: int = PAD_ID) -> Batch:
    """Left-pad prompts to the batch's longest; every answer region has the same length."""
    gen = len(pairs[0][1])
    if any(len(a) != gen for _, a in pairs):
        raise ConfigError("every answer in a batch must be padded to the same gen_length")
    longest = max(len(p) for p, _ in pairs)
    rows = [[pad_id] * (longest - len(p)) + p + a for p, a in pairs]
    real = [[False] * (longest - len(p)) + [True] * (len(p) + gen) for p, _ in pairs]
    input_ids = torch.tensor(rows, dtype=torch.long)  # (B, L)
    key_mask = torch.tensor(real, dtype=torch.bool)  # (B, L)
    answer_mask = torch.zeros_like(key_mask)
    answer_mask[:, longest:] = True
    return Batch(input_ids, key_mask, positions_from_mask(key_mask), answer_mask)


class BatchStream:
    """Deterministic batches: step s → examples [s·B, (s+1)·B) of a per-epoch seeded permutation."""

    def __init__(self, pairs: list[Pair], batch_size: int, seed: int) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def order(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.pairs), generator=gen)
        return self._order

    def indices(self, step: int) -> list[int]:
        """The example indices of batch `step` (wrapping into the next epoch as needed)."""
        n, out = len(self.pairs), []
        for k in range(step * self.batch_size, (step + 1) * self.batch_size):
            out.append(int(self.order(k // n)[k % n]))
        return out

    def batch(self, step: int) -> Batch:
        return collate([self.pairs[i] for i in self.indices(step)])

    def epoch_of(self, step: int) -> float:
        return step * self.batch_size / len(self.pairs)
