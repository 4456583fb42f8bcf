"""Di4C on a two-token distribution whose joint no product step can match: the mixture student gets close."""
from __future__ import annotations

import math

import torch
from torch import nn

from unmask.train.di4c import (LatentConditioned, di4c_loss, latent_features, mixture_log_likelihood,
                               sample_one_step, teacher_step)

MASK = 2  # tokens 0 and 1; 2 is [MASK] (input only)


def teacher(x: torch.Tensor) -> torch.Tensor:
    """The exact denoiser of 'both tokens equal, each value with probability 1/2': (N, 2) → logits (N, 2, 2)."""
    logits = torch.zeros(x.shape[0], 2, 2)
    for n, row in enumerate(x.tolist()):
        known = [v for v in row if v != MASK]
        if known:
            logits[n, :, known[0]] = 12.0       # a revealed token fixes the other
    return logits


class Student(nn.Module):
    """A small MLP denoiser; with use_latent=False it ignores λ: a plain product model."""

    def __init__(self, use_latent: bool) -> None:
        super().__init__()
        self.use_latent = use_latent
        self.net = nn.Sequential(nn.Linear(6 + 16, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        feats = latent_features(lam, 8) * float(self.use_latent)
        return self.net(torch.cat([nn.functional.one_hot(x, 3).flatten(1).float(), feats], -1)).view(-1, 2, 2)


def teacher_two_step_joint() -> torch.Tensor:
    """The teacher's two-step distribution from [MASK, MASK], enumerated: one token per step."""
    joint = torch.zeros(2, 2)
    p1 = teacher(torch.tensor([[MASK, MASK]])).softmax(-1)[0]
    for first in (0, 1):                       # which position the first step reveals (probability 1/2 each)
        for a in (0, 1):
            x = [MASK, MASK]
            x[first] = a
            p2 = teacher(torch.tensor([x])).softmax(-1)[0, 1 - first]
            for b in (0, 1):
                pair = (a, b) if first == 0 else (b, a)
                joint[pair] += 0.5 * p1[first, a] * p2[b]
    return joint


def one_step_joint(student: Student) -> torch.Tensor:
    """E_λ[p(x1 | λ) p(x2 | λ)] from [MASK, MASK] on a fine grid of λ."""
    lam = (torch.arange(2000) + 0.5) / 2000
    with torch.no_grad():
        p = student(torch.full((2000, 2), MASK), lam).softmax(-1)                    # (N, 2, 2)
    return torch.einsum("na,nb->ab", p[:, 0], p[:, 1]) / 2000


def train(student: Student, steps: int = 120) -> None:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3, foreach=False)
    for _ in range(steps):
        value = torch.randint(2, (64, 1), generator=gen).expand(64, 2)
        masked = torch.rand(64, 2, generator=gen) < torch.rand(64, 1, generator=gen) * 1.5
        x_t = value.masked_fill(masked, MASK)
        loss, _ = di4c_loss(student, teacher, x_t, masked, MASK, gen, latents=8)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_mixture_student_matches_a_joint_that_a_product_step_cannot() -> None:
    torch.manual_seed(0)
    target = teacher_two_step_joint()
    assert torch.allclose(target, torch.tensor([[0.5, 0.0], [0.0, 0.5]]), atol=1e-4)
    product, mixture = Student(use_latent=False), Student(use_latent=True)
    train(product)
    train(mixture)
    tv_product = 0.5 * (one_step_joint(product) - target).abs().sum().item()
    tv_mixture = 0.5 * (one_step_joint(mixture) - target).abs().sum().item()
    assert tv_product > 0.4            # a product of the marginals (1/2, 1/2): TV 1/2
    assert tv_mixture < 0.15 and tv_mixture < tv_product / 3
    draws = sample_one_step(mixture, torch.full((400, 2), MASK), MASK, torch.Generator().manual_seed(1))
    assert (draws[:, 0] == draws[:, 1]).float().mean() > 0.85 and 0.3 < draws[:, 0].float().mean() < 0.7


def test_mixture_likelihood_and_teacher_step_by_hand() -> None:
    logp = torch.log(torch.tensor([[[[0.9, 0.1], [0.8, 0.2]], [[0.2, 0.8], [0.3, 0.7]]]]))     # (1, K=2, D=2, V=2)
    got = mixture_log_likelihood(logp, torch.tensor([[0, 0]]), torch.tensor([[True, True]]))
    assert math.isclose(got.item(), math.log((0.9 * 0.8 + 0.2 * 0.3) / 2), rel_tol=1e-6)
    only_first = mixture_log_likelihood(logp, torch.tensor([[0, 0]]), torch.tensor([[True, False]]))
    assert math.isclose(only_first.item(), math.log((0.9 + 0.2) / 2), rel_tol=1e-6)
    x = torch.tensor([[MASK, MASK, MASK, MASK], [1, MASK, 0, MASK]])
    logp_t = torch.log(torch.tensor([[0.0 + 1e-9, 1.0]]).expand(2, 4, 2))                        # teacher says 1
    x_u = teacher_step(x, logp_t, x == MASK, 0.5, MASK, torch.Generator().manual_seed(0))
    assert ((x_u != MASK) & (x == MASK)).sum(-1).tolist() == [2, 1]     # a quota of half the masked, ≥ 1
    assert x_u[1, 0] == 1 and x_u[1, 2] == 0 and set(x_u[x != x_u].tolist()) == {1}


def test_latent_conditioned_decoder_starts_as_the_model_and_then_depends_on_lambda() -> None:
    from tests.train.test_mdlm import tiny_model

    base = tiny_model()
    student = LatentConditioned(base)
    ids, pos = torch.tensor([[5, 6, 7, MASK]]), torch.arange(4)[None]
    with torch.no_grad():
        assert torch.equal(student(ids, pos, torch.tensor([0.3])), base(ids, pos))
        nn.init.normal_(student.latent.weight)
        a, b = student(ids, pos, torch.tensor([0.1])), student(ids, pos, torch.tensor([0.9]))
    assert not torch.allclose(a, b) and torch.equal(base(ids, pos), base(ids, pos))   # the hook is gone after a call
