"""Di4C (arXiv 2410.08709, ICML 2025; METHODS.md §16): distil a multi-step teacher into a one-step mixture student.

A one-step masked-diffusion denoiser is a *product* model: given x_t it draws every masked position
independently, so a joint such as "both tokens equal" cannot come out of one step (two teacher steps get it
right by conditioning the second token on the first). Di4C's student takes a latent λ ~ U(0, 1) besides x_t:
for fixed λ it is still a product, but its one-step distribution E_λ[Π_d p_θ(x_0^d | x_t, λ)] is a mixture
of products, which can carry the correlation between positions.

Losses, on a batch of noisy states x_t (masked positions `masked`) and K latents per state:
  * distillation: Σ_d KL(p_teacher(x_0^d | x_t) ‖ (1/K) Σ_k p_θ(x_0^d | x_t, λ_k)) over masked d: the mixture's
    marginals match the teacher's, while each λ-component is free to be sharper;
  * consistency: x_u = one teacher step from x_t (a quota of `teacher_fraction` of the masked positions drawn
    from the teacher), then x_0 ~ the (frozen) student from x_u with its own λ; the student's one step from x_t must
    explain that two-step sample: −log (1/K) Σ_k Π_d p_θ(x_0^d | x_t, λ_k), the mixture likelihood (the
    average over λ sits inside the log, so the components may specialise). This is the term that moves the
    teacher's two-step correlation into one student step.
Differences from the sony/di4c code: there the distillation KL is taken per λ-component (and, in the paper,
at small noise levels, where a product step is accurate); here it is taken on the mixture's marginal at
every noise level, which leaves the components free to specialise. The control variates and the data term
of that code are left out.

`LatentConditioned` feeds λ to any `DecoderLM`: sin/cos features of λ, projected to d_model (zero-initialised,
so at the start the student is the teacher) and added to every token embedding through a forward hook on
the embedding, leaving the model class untouched. The engine cannot feed λ yet: a Di4C-trained checkpoint
decodes only through `sample_one_step` here.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from unmask.models.transformer import DecoderLM

Denoiser = Callable[[Tensor, Tensor], Tensor]   # (x_t (N, D) long, λ (N,) float) → logits (N, D, V)
Teacher = Callable[[Tensor], Tensor]            # x_t (N, D) long → logits (N, D, V)


def latent_features(lam: Tensor, n: int) -> Tensor:
    """(N,) λ in [0, 1] → (N, 2n) sin/cos features at frequencies π·1 … π·n."""
    angles = lam[:, None] * torch.arange(1, n + 1, device=lam.device, dtype=lam.dtype) * math.pi
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LatentConditioned(nn.Module):
    """A DecoderLM fed a latent λ per row: the embedding of every token is shifted by proj(features(λ))."""

    def __init__(self, model: DecoderLM, n_features: int = 8) -> None:
        super().__init__()
        self.model, self.n_features = model, n_features
        self.latent = nn.Linear(2 * n_features, model.cfg.d_model)
        nn.init.zeros_(self.latent.weight)
        nn.init.zeros_(self.latent.bias)

    def forward(self, input_ids: Tensor, positions: Tensor, lam: Tensor, view=None, logits_at=None) -> Tensor:
        shift = self.latent(latent_features(lam.float(), self.n_features))[:, None, :]    # (B, 1, d_model)
        handle = self.model.embed.register_forward_hook(lambda module, args, out: out + shift.to(out.dtype))
        try:
            return self.model(input_ids, positions, view, logits_at)
        finally:
            handle.remove()


def mixture_log_likelihood(logp: Tensor, x0: Tensor, where: Tensor) -> Tensor:
    """log (1/K) Σ_k Π_{d in where} p_k(x0^d): logp (B, K, D, V) log-probs, x0 (B, D), where (B, D) → (B,)."""
    B, K, D, _ = logp.shape
    picked = logp.gather(-1, x0[:, None, :, None].expand(B, K, D, 1)).squeeze(-1)       # (B, K, D)
    per_latent = (picked * where[:, None, :]).sum(-1)                                     # (B, K)
    return torch.logsumexp(per_latent, dim=1) - math.log(K)


def teacher_step(x_t: Tensor, teacher_logp: Tensor, masked: Tensor, fraction: float, mask_id: int,
                 generator: torch.Generator) -> Tensor:
    """One teacher step: max(1, round(fraction · n_masked)) random masked positions per row are drawn from
    the teacher (a quota step, as LLaDA's sampler takes); the other masked positions stay masked."""
    scores = torch.rand(masked.shape, generator=generator).to(x_t.device).masked_fill(~masked, -1.0)
    quota = (masked.sum(-1, keepdim=True) * fraction).round().clamp(min=1)                   # (B, 1)
    rank = scores.argsort(-1, descending=True).argsort(-1)                                      # 0 = first revealed
    reveal = masked & (rank < quota)
    tokens = sample_tokens(teacher_logp, generator)
    return torch.where(reveal, tokens, x_t).masked_fill(masked & ~reveal, mask_id)


def sample_tokens(logp: Tensor, generator: torch.Generator) -> Tensor:
    """Independent categorical draws from log-probs (..., V) → (...) long (Gumbel-max)."""
    u = torch.rand(logp.shape, generator=generator, device=logp.device, dtype=torch.float64).clamp_(1e-20, 1)
    return (logp.double() - (-u.log()).log()).argmax(-1)


def di4c_loss(student: Denoiser, teacher: Teacher, x_t: Tensor, masked: Tensor, mask_id: int,
              generator: torch.Generator, latents: int = 8, teacher_fraction: float = 0.5,
              consistency_weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """The two Di4C terms of the module docstring, averaged over the batch; returns (loss, parts)."""
    B, D = x_t.shape
    K = latents
    lam = torch.rand(B * K, generator=generator).to(x_t.device)
    logp = F.log_softmax(student(x_t.repeat_interleave(K, 0), lam), -1).view(B, K, D, -1)     # (B, K, D, V)
    with torch.no_grad():
        t_logp = F.log_softmax(teacher(x_t), -1)                                                # (B, D, V)
    mixture_logp = torch.logsumexp(logp, dim=1) - math.log(K)                                  # (B, D, V)
    kl = (t_logp.exp() * (t_logp - mixture_logp)).sum(-1)                                       # (B, D)
    distil = (kl * masked).sum(-1).mean()
    with torch.no_grad():
        x_u = teacher_step(x_t, t_logp, masked, teacher_fraction, mask_id, generator)
        lam_u = torch.rand(B, generator=generator).to(x_t.device)
        x0 = sample_tokens(F.log_softmax(student(x_u, lam_u), -1), generator)
        x0 = torch.where(x_u == mask_id, x0, x_u)                                               # the two-step sample
    consistency = -mixture_log_likelihood(logp, x0, masked).mean()
    loss = distil + consistency_weight * consistency
    return loss, {"distil": distil.item(), "consistency": consistency.item()}


@torch.no_grad()
def sample_one_step(student: Denoiser, x_t: Tensor, mask_id: int, generator: torch.Generator) -> Tensor:
    """One student step from x_t: a λ per row, then every masked position drawn independently given it."""
    lam = torch.rand(x_t.shape[0], generator=generator).to(x_t.device)
    tokens = sample_tokens(F.log_softmax(student(x_t, lam), -1), generator)
    return torch.where(x_t == mask_id, tokens, x_t)
