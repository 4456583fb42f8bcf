"""Learn2PD's per-position features (arXiv 2509.25188): what the filter reads at each masked position of a step.

The features are the same function of the same tensors at training (unmask/train/filter_data.py) and decode
time (decoding/learned_filter.py): `token_stats` of the step's logits, then `step_features` on the canvas. Every
value is per row, so a row's decisions never depend on the rows it shares a step with. All float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

FEATURES = ("p1", "margin", "entropy", "log_odds", "is_eos", "offset", "from_frontier", "masked_frac", "step",
            "left_conf", "right_conf", "left_done", "right_done", "masked_left", "min_left_conf", "prev_known",
            "prev_same", "prev_p1", "conf_rank", "token_bucket")   # a head reads a subset, token_bucket last
TOKEN_BUCKETS = 128     # the argmax token's id modulo this indexes a small learned embedding (digits ≠ punctuation)
LOG_ODDS_CLIP = 12.0
STEP_SCALE = 16.0


def token_stats(logits: Tensor, eos_ids: tuple[int, ...]) -> Tensor:
    """(B, N, 5) float64 per prediction: top-1 probability, top-1 − top-2, entropy / log V, clipped log-odds of
    the top-1 / 12, and 1 where the argmax is an EOS id. logits: (B, N, V)."""
    logp = logits.double().log_softmax(-1)
    top = logp.topk(2, dim=-1)
    p1, p2 = top.values[..., 0].exp(), top.values[..., 1].exp()
    entropy = -(logp.exp() * logp).nan_to_num().sum(-1) / math.log(logits.shape[-1])
    log_odds = (top.values[..., 0] - torch.log1p(-p1.clamp(max=1 - 1e-15))).clamp(-LOG_ODDS_CLIP, LOG_ODDS_CLIP)
    is_eos = torch.isin(top.indices[..., 0], torch.tensor(eos_ids, device=logits.device)).double()
    return torch.stack([p1, p1 - p2, entropy, log_odds / LOG_ODDS_CLIP, is_eos], -1)


def step_features(stats: Tensor, predicted: Tensor, is_masked: Tensor, window: Tensor, window_step: Tensor,
                  tokens: Tensor, previous: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """(B, G, len(FEATURES)) float64 for every generated position of a step.

    stats: (B, G, 5) `token_stats` scattered onto the region (anything where not predicted); tokens: (B, G) long,
    the argmax there (its id modulo TOKEN_BUCKETS is the last column, read by the head's embedding); predicted,
    is_masked, window: (B, G) bool; window_step: (B,) steps since the row's window opened. A neighbour that is
    committed (or lies outside the region: the prompt on the left, the end on the right) counts as done with
    confidence 1; one that was not predicted counts as confidence 0. `masked_left` is the share of the window's
    masked positions left of the position, `min_left_conf` the lowest confidence among them (1 when none): a
    token that depends on an unsure one before it is at risk. `previous`: the row's previous forward, (B, G) long
    argmax (-1 where that forward did not predict the position, or there was none) and (B, G) top-1
    probability; `prev_same` is 1 where the argmax has not changed since. `conf_rank`: how many of the window's
    masked positions are surer, / the window's length (0: the surest).
    """
    B, G = is_masked.shape
    idx = torch.arange(G, device=is_masked.device).expand(B, G)
    stats = torch.where(predicted[..., None], stats, torch.zeros_like(stats))
    length = window.sum(-1, keepdim=True).clamp(min=1).double()
    start = torch.where(window, idx, G).amin(-1, keepdim=True)
    frontier = torch.where(window & is_masked, idx, G).amin(-1, keepdim=True).clamp(max=G - 1)
    offset = (idx - start).double() / length
    from_frontier = (idx - frontier).double() / length
    masked_frac = ((window & is_masked).sum(-1, keepdim=True).double() / length).expand(B, G)
    step = (window_step.double().clamp(max=STEP_SCALE) / STEP_SCALE)[:, None].expand(B, G)
    done = (~is_masked).double()
    conf = torch.where(is_masked, stats[..., 0], torch.ones_like(done))
    one = torch.ones(B, 1, dtype=torch.float64, device=is_masked.device)
    left_conf, right_conf = torch.cat([one, conf[:, :-1]], 1), torch.cat([conf[:, 1:], one], 1)
    left_done, right_done = torch.cat([one, done[:, :-1]], 1), torch.cat([done[:, 1:], one], 1)
    open_ = (window & is_masked).double()
    masked_left = (open_.cumsum(-1) - open_) / length
    open_conf = torch.where(window & is_masked, conf, torch.ones_like(conf))
    min_left_conf = torch.cat([one, open_conf[:, :-1].cummin(-1).values], 1)
    surer = (conf[:, None, :] > conf[:, :, None]) & (window & is_masked)[:, None, :]     # (B, G, G): j surer than i
    conf_rank = surer.sum(-1).double() / length
    prev_known, prev_same, prev_p1 = previous_features(predicted, tokens, previous)
    bucket = torch.where(predicted, tokens % TOKEN_BUCKETS, 0).double()
    return torch.cat([stats, torch.stack([offset, from_frontier, masked_frac, step, left_conf, right_conf,
                                          left_done, right_done, masked_left, min_left_conf, prev_known, prev_same,
                                          prev_p1, conf_rank, bucket], -1)], -1)


def previous_features(predicted: Tensor, tokens: Tensor, previous: tuple[Tensor, Tensor] | None
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """(B, G) float64 each: the previous forward predicted the position, its argmax was the same, its top-1
    probability (all 0 where unknown)."""
    if previous is None:
        zero = torch.zeros(tokens.shape, dtype=torch.float64, device=tokens.device)
        return zero, zero, zero
    prev_tokens, prev_p1 = previous
    known = predicted & (prev_tokens >= 0)
    same = known & (prev_tokens == tokens)
    return known.double(), same.double(), torch.where(known, prev_p1.double(), 0.0)
