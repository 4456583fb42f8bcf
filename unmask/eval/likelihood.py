"""Log-likelihood of a continuation under a masked diffusion model: LLaDA's Monte-Carlo estimator.

A masked diffusion model has no left-to-right factorisation, so log p(target | prefix) is estimated by the
evidence lower bound LLaDA's evaluation uses (arXiv 2502.09992, Eq. 6 and its `get_log_likelihood.py`):

    log p(x | prefix) ≥ E_{l ~ U{1..L}} E_{M: l of the L target positions masked} [ (L / l) Σ_{i ∈ M} log p(x_i | x_{¬M}, prefix) ]

Each Monte-Carlo batch of `batch_size` rows draws one offset k ~ U{1..L} and spreads the rows' mask counts
evenly over 1..L from it (a stratified draw: every batch covers the range of masking ratios); each row
masks that many target positions chosen uniformly, the prompt never. A row contributes the cross-entropy
at its masked positions divided by its masking ratio l / L; the estimate is minus the mean over the
`mc_num / batch_size` batches of the per-row mean. With classifier-free guidance (`cfg` > 0) each row is
paired with a copy whose prefix is masked too, and the logits combine as uncond + (cfg + 1)(cond − uncond),
as in LLaDA's `get_logits`.

`greedy_matches` is LLaDA's `suffix_greedy_prediction`: starting from a fully masked target, commit the
single most confident argmax token per forward; True when the result is exactly the target.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from unmask.errors import ConfigError

LogitsFn = Callable[[Sequence[Sequence[int]]], torch.Tensor]  # ids (B, L) → logits (B, L, V), row i predicts token i


class MonteCarloLikelihood:
    """LLaDA's masked-diffusion likelihood estimate (module docstring); `logits_fn` is e.g. `LLM.logits`."""

    def __init__(self, logits_fn: LogitsFn, mask_id: int, mc_num: int = 128, batch_size: int = 32,
                 cfg: float = 0.0, seed: int = 0) -> None:
        for name, value in (("mc_num", mc_num), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if mc_num % batch_size:
            raise ConfigError(f"mc_num ({mc_num}) must be a multiple of the likelihood batch size ({batch_size})")
        if not isinstance(cfg, (int, float)) or cfg < 0:
            raise ConfigError(f"cfg must be a number ≥ 0, got {cfg!r}")
        self.logits_fn, self.mask_id = logits_fn, mask_id
        self.mc_num, self.batch_size, self.cfg = mc_num, batch_size, float(cfg)
        self.generator = torch.Generator().manual_seed(seed)

    def masked_rows(self, prefix: list[int], target: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """One stratified batch: the noisy rows (B, P + L) and each row's masking ratio l / L (B,)."""
        b, length = self.batch_size, len(target)
        k = int(torch.randint(1, length + 1, (), generator=self.generator))
        counts = torch.round(torch.linspace(float(k), k + (b - 1) * length / b, steps=b)).long()
        counts = (counts - 1) % length + 1
        order = torch.rand(b, length, generator=self.generator).argsort(dim=1)  # a random permutation per row
        masked = order < counts[:, None]  # a uniformly random set of `count` target positions per row
        rows = torch.tensor(prefix + target).repeat(b, 1)
        rows[:, len(prefix):][masked] = self.mask_id
        return rows, counts.double() / length

    def logits(self, rows: torch.Tensor, prefix_len: int) -> torch.Tensor:
        """Logits of `rows`, with classifier-free guidance against a prefix-masked copy when cfg > 0."""
        if self.cfg == 0:
            return self.logits_fn(rows.tolist()).double()
        uncond = rows.clone()
        uncond[:, :prefix_len] = self.mask_id
        both = self.logits_fn(torch.cat([rows, uncond]).tolist()).double()
        cond, free = both.chunk(2)
        return free + (self.cfg + 1) * (cond - free)

    def loglikelihood(self, prefix: list[int], target: list[int]) -> float:
        """The Monte-Carlo estimate of log p(target | prefix) (a lower bound in expectation)."""
        if not target:
            raise ConfigError("loglikelihood needs a non-empty continuation")
        truth = torch.tensor(prefix + target)
        estimates = []
        for _ in range(self.mc_num // self.batch_size):
            rows, ratio = self.masked_rows(prefix, target)
            where = rows == self.mask_id
            logits = self.logits(rows, len(prefix)).cpu()
            nll = F.cross_entropy(logits[where], truth.expand_as(rows)[where], reduction="none")
            weights = (1 / ratio)[:, None].expand_as(rows)[where]
            estimates.append(float((nll * weights).sum()) / self.batch_size)
        return -sum(estimates) / len(estimates)

    def greedy_matches(self, prefix: list[int], target: list[int]) -> bool:
        """Whether one-most-confident-token-per-forward greedy decoding of the target reproduces it."""
        row = torch.tensor([prefix + [self.mask_id] * len(target)])
        for _ in target:
            where = row[0] == self.mask_id
            probs = self.logits(row, len(prefix))[0].cpu()[where].softmax(-1)
            confidence, token = probs.max(-1)
            best = int(confidence.argmax())
            row[0, where.nonzero()[best, 0]] = token[best]
        return row[0, len(prefix):].tolist() == list(target)
