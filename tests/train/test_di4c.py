"""Di4C on a two-token distribution whose joint no product step can match: the mixture student gets close."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unmask.train.char_tokenizer import MASK_ID

from unmask.train.di4c import (answer_denoiser, di4c_batch_loss, di4c_loss, latent_features,
                               mixture_log_likelihood, sample_one_step, teacher_step)

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


def test_confidence_order_reveals_the_teachers_surest_draws_and_temperature_zero_is_argmax() -> None:
    x = torch.full((1, 4), MASK)
    probs = torch.tensor([[[0.6, 0.4], [0.05, 0.95], [0.3, 0.7], [0.9, 0.1]]])                   # (1, 4, 2)
    x_u = teacher_step(x, probs.log(), x == MASK, 0.5, MASK, torch.Generator().manual_seed(0), 0.0, "confidence")
    assert x_u.tolist() == [[MASK, 1, MASK, 0]]        # the two surest positions, each at its argmax


def test_data_term_is_the_mixture_likelihood_of_the_clean_rows() -> None:
    gen = torch.Generator().manual_seed(3)
    x_0 = torch.tensor([[0, 0], [1, 1]])
    masked = torch.tensor([[True, True], [True, False]])
    x_t = x_0.masked_fill(masked, MASK)
    student = Student(use_latent=True)
    base, parts = di4c_loss(student, teacher, x_t, masked, MASK, torch.Generator().manual_seed(3), latents=4)
    both, parts_d = di4c_loss(student, teacher, x_t, masked, MASK, gen, latents=4, x_0=x_0, data_weight=2.0)
    lam = torch.rand(2 * 4, generator=torch.Generator().manual_seed(3))     # di4c_loss's first draw: the λ_k
    logp = student(x_t.repeat_interleave(4, 0), lam).log_softmax(-1).view(2, 4, 2, 2)
    by_hand = -mixture_log_likelihood(logp, x_0, masked).mean()
    assert parts_d["data"] == pytest.approx(by_hand.item(), rel=1e-5)
    assert both.item() == pytest.approx(base.item() + 2.0 * by_hand.item(), rel=1e-5)
    assert "data" not in parts


def test_lambda_input_starts_at_zero_in_a_student_of_the_teacher_and_then_matters(tmp_path) -> None:
    """A di4c student is the teacher's DecoderLM plus a λ projection that starts at zero: at step 0 it predicts
    exactly as the teacher, whatever λ, so the distillation KL of a batch is 0 there."""
    from unmask.models.loader import load_model
    from unmask.train.checkpoint import RunSetup
    from unmask.train.distill import DistillConfig
    from unmask.train.mdlm import train
    from unmask.train.data import collate
    from tests.train.test_mdlm import small_config

    train(small_config(str(tmp_path / "teacher"), steps=1))
    cfg = DistillConfig(method="di4c", teacher=str(tmp_path / "teacher"), task="copy", train_size=8,
                        out=str(tmp_path / "s"), latent_features=4)
    student = RunSetup.build(cfg).model
    teach, _ = load_model(tmp_path / "teacher")
    assert student.latent is not None and student.latent.proj.weight.abs().sum() == 0
    batch = collate(RunSetup.build(cfg).pairs[:3])
    with torch.no_grad():
        lam = torch.tensor([0.1, 0.5, 0.9])
        assert torch.allclose(answer_denoiser(student, batch)(batch.input_ids, lam),
                              answer_denoiser(teach, batch)(batch.input_ids), atol=1e-5)
        _, parts = di4c_batch_loss(student, teach, batch, torch.Generator().manual_seed(0), MASK_ID, 1.0, latents=2)
        assert parts["distil"] == pytest.approx(0.0, abs=1e-5)
        nn.init.normal_(student.latent.proj.weight)
        a = answer_denoiser(student, batch)(batch.input_ids, torch.full((3,), 0.1))
        b = answer_denoiser(student, batch)(batch.input_ids, torch.full((3,), 0.9))
    assert not torch.allclose(a, b)
