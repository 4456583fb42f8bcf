"""AR-verified decoding in the engine: the step's dLLM logits draft, the verifier model (engine/autoregressive.py)
reads the draft, a rule of decoding/verify.py accepts a prefix, and this writes it (APD, SpecDiff, guided).

Per row and step, left to right: t = the row's first candidate position (a masked position of its current
window); the draft covers the run of candidates t, t+1, … (at most `verify_lookahead`, within the window). The
verifier reads, in one forward, every token it has not read yet: the committed tokens from its cache frontier
`fed` up to t − 1, then the draft, whose last token gives the prediction after the draft. The verdict's tokens
are committed at t, t+1, …; the verifier's cache then keeps the positions whose token it read is final (the
prompt, earlier commits and the accepted draft prefix) up to the new frontier − 1 (that last one is re-read
next step: its logits predict the next position).

The verifier's per-row state lives in DecodeState.memory, so it follows its row when rows join, leave, split
or merge: `verifier_kv` (its KV slots, engine/ar_cache.py), `verifier_fed` (slots [0, fed) valid) and
`verifier_nfe` (its forwards, reported as Completion.verifier_nfe beside the dLLM's nfe) and `verifier_computed`
(positions × verifier layers each row had read: Completion.verifier_computed beside the dLLM's `computed`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from unmask.cache import Canvas
from unmask.decoding import DecodeState, TokenSampler
from unmask.decoding.verify import VerifyRule, leading_true
from unmask.engine.autoregressive import ARModel

KV, FED, NFE, COMPUTED = "verifier_kv", "verifier_fed", "verifier_nfe", "verifier_computed"


def verifier_forwards(state: DecodeState) -> Tensor:
    """(B,) long: the verifier forwards each row has spent (zeros without a verifier)."""
    return state.memory.get(NFE, torch.zeros_like(state.nfe))


def verifier_computed(state: DecodeState) -> Tensor:
    """(B,) long: positions × layers the verifier has computed for each row (zeros without a verifier); a row
    counts the positions it read, not the padding of a batched forward."""
    return state.memory.get(COMPUTED, torch.zeros_like(state.nfe))


class VerifyStep:
    """Decides one step's commits with a verify rule and the verifier model, instead of the commit rule."""

    def __init__(self, rule: VerifyRule, verifier: ARModel, lookahead: int | None, sampler: TokenSampler) -> None:
        self.rule, self.verifier, self.lookahead, self.sampler = rule, verifier, lookahead, sampler

    def decide(self, logits: Tensor, predicts: Tensor, candidates: Tensor, state: DecodeState, canvas: Canvas,
               generators: list[torch.Generator]) -> tuple[Tensor, Tensor]:
        """logits (B, N, V) at region positions predicts (B, N); candidates (B, G) bool.
        Returns (commit (B, G) bool, proposed (B, G) long), the commits a contiguous run from each row's t."""
        B, G = state.tokens.shape
        K = min(self.lookahead or G, G)
        idx = torch.arange(G, device=candidates.device)
        t = torch.where(candidates, idx, G).min(-1).values                                # (B,) G: none
        active = t < G
        cols = t[:, None] + torch.arange(K, device=t.device)                                # (B, K)
        at = cols.clamp(max=G - 1)
        length = (candidates.gather(1, at) & (cols < G)).long().cumprod(-1).sum(-1)       # (B,) the draft run
        slot = torch.zeros(B, G, dtype=torch.long, device=t.device).scatter(
            1, predicts, torch.arange(predicts.shape[1], device=t.device).expand(B, -1))   # region pos → logits row
        rows = slot.gather(1, at)
        dllm = self.sampler.filtered(logits.gather(1, rows[..., None].expand(-1, -1, logits.shape[-1])))  # (B, K, V)
        draft, context = self.rule.draft(dllm, generators)
        ar_logits = self.read(state, canvas, t, draft, length, active)                    # (B, K + 1, V)
        ar_logits = ar_logits.to(dllm.dtype).index_fill(-1, self.banned(ar_logits), float("-inf"))  # never [MASK]
        verdict = self.rule.accept(draft, context, dllm, ar_logits, length, generators)
        count = torch.where(active, verdict.count, 0)
        commit = (idx >= t[:, None]) & (idx < (t + count)[:, None]) & candidates
        offset = (idx[None, :] - t[:, None]).clamp(0, K)
        proposed = torch.where(commit, verdict.tokens.gather(1, offset), state.tokens)
        self.keep_final(state, canvas, t, draft, verdict.tokens, length, commit.sum(-1), active)
        return commit, proposed

    def banned(self, logits: Tensor) -> Tensor:
        """The ids the sampler never proposes (the mask id; EOS with logits_eos_inf), kept out of the verifier's
        tokens too; top-k / top-p shape only the dLLM's draft."""
        return torch.tensor(self.sampler.banned, dtype=torch.long, device=logits.device)

    # ---- the verifier's cache ---------------------------------------------------------------------
    def read(self, state: DecodeState, canvas: Canvas, t: Tensor, draft: Tensor, length: Tensor,
             active: Tensor) -> Tensor:
        """One verifier forward; its logits (B, K + 1, V) predicting positions t .. t + K of each row."""
        B, K = draft.shape
        P, L = canvas.prompt_length, canvas.key_mask.shape[1]
        if KV not in state.memory:
            state.memory[KV] = self.verifier.empty_kv(B, L)
            state.memory[FED] = torch.zeros_like(state.nfe)
            state.memory[NFE] = torch.zeros_like(state.nfe)
            state.memory[COMPUTED] = torch.zeros_like(state.nfe)
        fed, pad = state.memory[FED], P - canvas.key_mask[:, :P].sum(-1)                 # (B,), (B,)
        frontier = P - pad + t                                                             # position of t
        end = frontier + length                                                            # read [fed, end)
        offset = torch.arange(state.gen_length, device=t.device)[None, :] - t[:, None]        # (B, G)
        drafted = (offset >= 0) & (offset < length[:, None])
        region = torch.where(drafted, draft.gather(1, offset.clamp(0, K - 1)), state.tokens)
        ids = torch.cat([canvas.prompt, region], 1)                                        # (B, L)
        Q = max(int(torch.where(active, end - fed, 0).max()), 1)                           # the one host sync
        positions = fed[:, None] + torch.arange(Q, device=t.device)                         # (B, Q)
        valid = (positions < end[:, None]) & active[:, None]
        chunk = ids.gather(1, (positions + pad[:, None]).clamp(max=L - 1))
        out = self.verifier.read(state.memory[KV], chunk, positions, valid)               # (B, Q, V)
        state.memory[NFE] = state.memory[NFE] + active.long()
        state.memory[COMPUTED] = state.memory[COMPUTED] + valid.sum(-1) * self.verifier.model.cfg.n_layers
        query = ((frontier - 1 - fed)[:, None] + torch.arange(K + 1, device=t.device)).clamp(0, Q - 1)
        return out.gather(1, query[..., None].expand(-1, -1, out.shape[-1]))

    def keep_final(self, state: DecodeState, canvas: Canvas, t: Tensor, draft: Tensor, written: Tensor,
                   length: Tensor, committed: Tensor, active: Tensor) -> None:
        """Move each row's cache frontier to the last position whose read token is final (module docstring)."""
        P = canvas.prompt_length
        frontier = canvas.key_mask[:, :P].sum(-1) + t
        matched = torch.minimum(leading_true(written[:, :-1] == draft, length), committed)
        fed = torch.minimum(frontier + matched, frontier + committed - 1)
        state.memory[FED] = torch.where(active, fed, state.memory[FED])
