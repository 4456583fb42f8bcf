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
  * data (`data_weight`, 0 = off): the same mixture likelihood of the clean x_0 the noisy state came from,
    −log (1/K) Σ_k Π_d p_θ(x_0^d | x_t, λ_k), when the caller has it (training batches do).
Differences from the sony/di4c code: there the distillation KL is taken per λ-component (and, in the paper,
at small noise levels, where a product step is accurate); here it is taken on the mixture's marginal at
every noise level, which leaves the components free to specialise. The control variates of that code are
left out.

The student is the teacher's DecoderLM with a λ input (models/latent.py: sin/cos features of λ, projected to
d_model and added to every token embedding; the projection starts at zero, so the student starts as the
teacher). `di4c_batch_loss` applies the loss to a training batch (prompt + answer rows, the answer masked at
a random level, or wholly with probability `full_mask_prob`: the state of one-step decoding); `unmask distill
--method di4c` (train/distill.py) trains with it and the engine draws λ per row when decoding such a model.

Our knobs beyond the paper, both defaulting to it: `teacher_temperature` (the temperature of the two-step
sample's draws; 0 = argmax) and `teacher_order` (which masked positions the teacher step reveals: `random`, as
LLaDA's random remasking and the paper, or `confidence`, the teacher's most confident draws first).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from unmask.models.cache_view import FullView
from unmask.models.latent import latent_features  # noqa: F401  (re-exported: the λ features of the student)
from unmask.models.transformer import DecoderLM
from unmask.train.data import Batch
from unmask.train.mdlm import noise_batch

Denoiser = Callable[[Tensor, Tensor], Tensor]   # (x_t (N, D) long, λ (N,) float) → logits (N, D, V)
Teacher = Callable[[Tensor], Tensor]            # x_t (N, D) long → logits (N, D, V)


def mixture_log_likelihood(logp: Tensor, x0: Tensor, where: Tensor) -> Tensor:
    """log (1/K) Σ_k Π_{d in where} p_k(x0^d): logp (B, K, D, V) log-probs, x0 (B, D), where (B, D) → (B,)."""
    B, K, D, _ = logp.shape
    picked = logp.gather(-1, x0[:, None, :, None].expand(B, K, D, 1)).squeeze(-1)       # (B, K, D)
    per_latent = (picked * where[:, None, :]).sum(-1)                                     # (B, K)
    return torch.logsumexp(per_latent, dim=1) - math.log(K)


def teacher_step(x_t: Tensor, teacher_logp: Tensor, masked: Tensor, fraction: float, mask_id: int,
                 generator: torch.Generator, temperature: float = 1.0, order: str = "random") -> Tensor:
    """One teacher step: max(1, round(fraction · n_masked)) masked positions per row are drawn from the teacher
    (a quota step, as LLaDA's sampler takes): random ones, or with order "confidence" those whose draw the
    teacher gives the highest probability; the other masked positions stay masked."""
    tokens = sample_tokens(teacher_logp, generator, temperature)
    if order == "confidence":
        scores = teacher_logp.gather(-1, tokens[..., None]).squeeze(-1).float().masked_fill(~masked, -math.inf)
    else:
        scores = torch.rand(masked.shape, generator=generator).to(x_t.device).masked_fill(~masked, -1.0)
    quota = (masked.sum(-1, keepdim=True) * fraction).round().clamp(min=1)                   # (B, 1)
    rank = scores.argsort(dim=-1, descending=True, stable=True).argsort(-1)                    # 0 = first revealed
    reveal = masked & (rank < quota)
    return torch.where(reveal, tokens, x_t).masked_fill(masked & ~reveal, mask_id)


def sample_tokens(logp: Tensor, generator: torch.Generator, temperature: float = 1.0) -> Tensor:
    """Independent categorical draws from log-probs (..., V) at `temperature` → (...) long (Gumbel-max);
    temperature 0 = argmax (no draws)."""
    if temperature == 0:
        return logp.argmax(-1)
    u = torch.rand(logp.shape, generator=generator, dtype=torch.float64).to(logp.device).clamp_(1e-20, 1)
    return (logp.double() / temperature - (-u.log()).log()).argmax(-1)


def di4c_loss(student: Denoiser, teacher: Teacher, x_t: Tensor, masked: Tensor, mask_id: int,
              generator: torch.Generator, latents: int = 8, teacher_fraction: float = 0.5,
              consistency_weight: float = 1.0, teacher_temperature: float = 1.0,
              teacher_order: str = "random", x_0: Tensor | None = None,
              data_weight: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """The Di4C terms of the module docstring, averaged over the batch; returns (loss, parts). x_0: the clean
    rows x_t came from (needed when data_weight > 0)."""
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
        x_u = teacher_step(x_t, t_logp, masked, teacher_fraction, mask_id, generator, teacher_temperature,
                           teacher_order)
        lam_u = torch.rand(B, generator=generator).to(x_t.device)
        x0 = sample_tokens(F.log_softmax(student(x_u, lam_u), -1), generator, teacher_temperature)
        x0 = torch.where(x_u == mask_id, x0, x_u)                                               # the two-step sample
    consistency = -mixture_log_likelihood(logp, x0, masked).mean()
    loss = distil + consistency_weight * consistency
    parts = {"distil": distil.item(), "consistency": consistency.item()}
    if data_weight > 0:
        data = -mixture_log_likelihood(logp, x_0, masked).mean()
        loss = loss + data_weight * data
        parts["data"] = data.item()
    return loss, parts


@torch.no_grad()
def sample_one_step(student: Denoiser, x_t: Tensor, mask_id: int, generator: torch.Generator) -> Tensor:
    """One student step from x_t: a λ per row, then every masked position drawn independently given it."""
    lam = torch.rand(x_t.shape[0], generator=generator).to(x_t.device)
    tokens = sample_tokens(F.log_softmax(student(x_t, lam), -1), generator)
    return torch.where(x_t == mask_id, tokens, x_t)


def answer_denoiser(model: DecoderLM, batch: Batch) -> Callable:
    """model as a Denoiser over `batch`'s rows (x (N, L) with N a multiple of the batch: rows repeated in
    place, as di4c_loss repeats them): its logits at every position, given λ when the model takes one."""
    B = batch.input_ids.shape[0]

    def run(x: Tensor, lam: Tensor | None = None) -> Tensor:
        reps = x.shape[0] // B
        keys, positions = batch.key_mask.repeat_interleave(reps, 0), batch.positions.repeat_interleave(reps, 0)
        return model(x, positions, FullView(keys), latent=lam)
    return run


def di4c_batch_loss(student: DecoderLM, teacher: DecoderLM, batch: Batch, generator: torch.Generator,
                    mask_id: int, full_mask_prob: float = 0.0, **knobs) -> tuple[Tensor, dict[str, float]]:
    """di4c_loss on a training batch: each row's answer masked at a level t ~ U(0, 1), or wholly (t = 1) with
    probability `full_mask_prob`; prompts stay clean. knobs: those of di4c_loss."""
    B = batch.input_ids.shape[0]
    full = torch.rand(B, generator=generator) < full_mask_prob
    t = torch.rand(B, generator=generator).masked_fill(full, 1.0)
    x_t, masked, _ = noise_batch(batch, generator, mask_id, eps=1e-3, t=t)   # t = 1 masks every answer token
    return di4c_loss(answer_denoiser(student, batch), answer_denoiser(teacher, batch), x_t, masked, mask_id,
                     generator, x_0=batch.input_ids, **knobs)
