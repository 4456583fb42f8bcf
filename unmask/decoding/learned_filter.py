"""Learn2PD (arXiv 2509.25188): a learned commit filter, `commit="learned"`.

A tiny MLP reads, for every masked position of a row's current window, features the decode loop already has
(its top-1 probability, margin, entropy, where it sits in the window, how far the window has got, its
neighbours' confidences) and predicts whether the position's current argmax already equals the token it will
finally get. Positions the filter calls final (probability ≥ `filter_threshold`) are committed, and always the
one it is surest of. The head is trained post hoc on the teacher's own decoding trajectories
(`unmask train-filter`, unmask/train/filter.py) and ships beside the model as `learn2pd_filter.safetensors` with
a small JSON of its shape and features.

The features are the same function of the same tensors at training and decode time (`step_features`); every
value is per row, so a row's decisions never depend on the rows it shares a step with. The MLP runs in float64.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from unmask.decoding.commit import COMMIT, CommitPolicy, best_one
from unmask.decoding.state import DecodeState
from unmask.errors import CheckpointError, ConfigError

FILTER_FILE = "learn2pd_filter.safetensors"
FILTER_CONFIG = "learn2pd_filter.json"
FEATURES = ("p1", "margin", "entropy", "log_odds", "is_eos", "offset", "from_frontier", "masked_frac", "step",
            "left_conf", "right_conf", "left_done", "right_done", "masked_left", "min_left_conf", "token_bucket")
TOKEN_BUCKETS = 128     # the argmax token's id modulo this indexes a small learned embedding (digits ≠ punctuation)
TOKEN_EMBED = 4
LOG_ODDS_CLIP = 12.0
STEP_SCALE = 16.0


# ---- features -------------------------------------------------------------------------------------------
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
                  tokens: Tensor) -> Tensor:
    """(B, G, len(FEATURES)) float64 for every generated position of a step.

    stats: (B, G, 5) `token_stats` scattered onto the region (anything where not predicted); tokens: (B, G) long,
    the argmax there (its id modulo TOKEN_BUCKETS is the last column, read by the head's embedding); predicted,
    is_masked, window: (B, G) bool; window_step: (B,) steps since the row's window opened. A neighbour that is
    committed (or lies outside the region: the prompt on the left, the end on the right) counts as done with
    confidence 1; one that was not predicted counts as confidence 0. `masked_left` is the share of the window's
    masked positions left of the position, `min_left_conf` the lowest confidence among them (1 when none): a
    token that depends on an unsure one before it is at risk.
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
    bucket = torch.where(predicted, tokens % TOKEN_BUCKETS, 0).double()
    return torch.cat([stats, torch.stack([offset, from_frontier, masked_frac, step, left_conf, right_conf,
                                          left_done, right_done, masked_left, min_left_conf, bucket], -1)], -1)


# ---- the head -------------------------------------------------------------------------------------------
class FilterHead(nn.Module):
    """features (…, F) → logit (…) that the position's current argmax is final: the numeric features and a
    4-dim embedding of the token bucket (the last feature) through two hidden layers."""

    def __init__(self, n_features: int = len(FEATURES), hidden: int = 32) -> None:
        super().__init__()
        self.n_features, self.hidden = n_features, hidden
        self.recommended_threshold: float | None = None   # the threshold its training validated, when known
        self.embed = nn.Embedding(TOKEN_BUCKETS, TOKEN_EMBED)
        self.net = nn.Sequential(nn.Linear(n_features - 1 + TOKEN_EMBED, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))

    def inputs(self, features: Tensor, dtype: torch.dtype) -> Tensor:
        bucket = features[..., -1].long().clamp(0, TOKEN_BUCKETS - 1)
        return torch.cat([features[..., :-1].to(dtype), self.embed.weight.to(dtype)[bucket]], -1)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(self.inputs(features, self.embed.weight.dtype)).squeeze(-1)

    @torch.no_grad()
    def probability(self, features: Tensor) -> Tensor:
        """Sigmoid of the logit, computed in float64 (a copy of the weights; the module is left as it is)."""
        x = self.inputs(features, torch.float64)
        for layer in self.net:
            x = nn.functional.linear(x, layer.weight.double(), layer.bias.double()) if isinstance(layer, nn.Linear) \
                else layer(x)
        return x.squeeze(-1).sigmoid()

    def save(self, directory: str | Path, meta: dict | None = None) -> Path:
        """Write FILTER_FILE (weights) and FILTER_CONFIG (shape, features, `meta`) into `directory`."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().float().contiguous() for k, v in self.state_dict().items()}, directory / FILTER_FILE)
        config = {"method": "learn2pd", "features": list(FEATURES), "hidden": self.hidden, **(meta or {})}
        (directory / FILTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory / FILTER_FILE


def filter_file(path: str | Path) -> Path:
    """The weights file of a filter given as the file itself or a directory holding FILTER_FILE."""
    path = Path(path)
    return path / FILTER_FILE if path.is_dir() else path


def load_filter(path: str | Path) -> FilterHead:
    """A FilterHead from `path` (file or directory). CheckpointError when it is missing or malformed."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = filter_file(path)
    if not weights_path.is_file():
        raise CheckpointError(f"no Learn2PD filter at {weights_path}; train one with `unmask train-filter`")
    config_path = weights_path.with_name(FILTER_CONFIG)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        weights = load_file(str(weights_path))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        raise CheckpointError(f"the Learn2PD filter at {weights_path} cannot be read: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must be a JSON object, got {type(config).__name__}")
    if config.get("features", list(FEATURES)) != list(FEATURES):
        raise CheckpointError(f"{config_path} was trained on features {config.get('features')}; this unmask "
                              f"computes {list(FEATURES)}: retrain it with `unmask train-filter`")
    hidden = config.get("hidden", weights.get("net.0.weight", torch.empty(32, 0)).shape[0])
    if not isinstance(hidden, int) or hidden < 1:
        raise CheckpointError(f"{config_path}: hidden must be a positive int, got {hidden!r}")
    head = FilterHead(len(FEATURES), int(hidden))
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if found != expected:
        raise CheckpointError(f"the Learn2PD filter at {weights_path} does not match its config: expected tensors "
                              f"{expected}, found {found}")
    head.load_state_dict(weights)
    validation = config.get("validation")
    recommended = validation.get("recommended_threshold") if isinstance(validation, dict) else None
    usable = isinstance(recommended, (int, float)) and not isinstance(recommended, bool) and 0 < recommended <= 1
    head.recommended_threshold = float(recommended) if usable else None
    return head.eval()


# ---- the commit rule ------------------------------------------------------------------------------------
@COMMIT.register("learned")
class LearnedCommit(CommitPolicy):
    """Commit every candidate the filter calls final (probability ≥ filter_threshold), always its surest one.
    filter_threshold None: the threshold the filter's own training validated (its JSON), else 0.5."""

    needs_view = True

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.temperature > 0:
            raise ConfigError("commit 'learned' was trained on greedy trajectories: its labels say whether the "
                              "argmax is final; use temperature=0")

    def __init__(self, learned_filter: FilterHead | str | Path | None, filter_threshold: float | None = None) -> None:
        if learned_filter is None:
            raise ConfigError("commit 'learned' needs a Learn2PD filter: this model ships none "
                              f"({FILTER_FILE}); train one with `unmask train-filter` or set learned_filter")
        self.head = learned_filter if isinstance(learned_filter, FilterHead) else load_filter(learned_filter)
        fallback = self.head.recommended_threshold if self.head.recommended_threshold is not None else 0.5
        self.threshold = filter_threshold if filter_threshold is not None else fallback

    def final_probability(self, state: DecodeState, view) -> Tensor:
        """(B, G) float64: the filter's probability that each position's argmax is final (0 where not predicted)."""
        stats_n = token_stats(view.logits, state.eos_ids)                                   # (B, N, 5)
        B, G = state.tokens.shape
        stats = stats_n.new_zeros(B, G, stats_n.shape[-1]).scatter(
            1, view.predicts[..., None].expand(-1, -1, stats_n.shape[-1]), stats_n)
        predicted = torch.zeros(B, G, dtype=torch.bool, device=stats.device).scatter(1, view.predicts, True)
        tokens = state.tokens.scatter(1, view.predicts, view.logits.argmax(-1))
        features = step_features(stats, predicted, state.is_masked, view.window, state.window_step, tokens)
        return torch.where(predicted, self.head.probability(features), 0.0)

    def select(self, scores: Tensor, candidates: Tensor, state: DecodeState, view=None) -> Tensor:
        p = self.final_probability(state, view)
        return ((p >= self.threshold) & candidates) | best_one(p, candidates)
