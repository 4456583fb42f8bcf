"""DiffusionSpec: what the decode loop must know about a checkpoint beyond its weights."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiffusionSpec:
    """Per-architecture facts read from the checkpoint's config where it has them.

    mask_id: the [MASK] token every generated position starts as.
    eos_ids: tokens that end an answer (EOS and end-of-turn).
    logit_shift: 0 when logits[i] predict token i (LLaDA); 1 when they come from hidden state i-1 (Dream).
    attention: "full", "block_causal:<n>" or "encoder_canvas" (a causal prompt encoder whose K/V a canvas decoder reads).
    context_len: the longest prompt + generation the model was trained for.
    default_preset: the decoding preset that reproduces the model's own reference sampler.
    pad_id: the token used to left-pad prompts in a batch (never attended to).
    corruption: "mask" (absorbing [MASK]: LLaDA, Dream) or "uniform" (the canvas starts as random tokens and
      the rejected ones are renoised each step: DiffusionGemma, which has no mask id: mask_id is -1).
    canvas_length: "uniform" models decode fixed canvases of this many tokens, one after another.
    autoregressive: a causal next-token model (attention "block_causal:1", logit_shift 1), not a dLLM: the engine
      uses it only as a verifier (`LLM(model, verifier=...)`) or for plain AR decoding, never as the denoiser.
    latent_conditioned: the model takes a latent λ per row besides the tokens (a Di4C student, models/latent.py);
      the decoding side draws it each step (decoding/latent.py).
    """

    mask_id: int
    eos_ids: tuple[int, ...]
    logit_shift: int = 0
    attention: str = "full"
    context_len: int = 4096
    default_preset: str = "llada"
    pad_id: int | None = None
    corruption: str = "mask"
    canvas_length: int | None = None
    autoregressive: bool = False
    latent_conditioned: bool = False

    def __post_init__(self) -> None:
        if self.corruption not in ("mask", "uniform"):
            raise ValueError(f"corruption must be 'mask' or 'uniform', got {self.corruption!r}")
        if self.logit_shift not in (0, 1):
            raise ValueError(f"logit_shift must be 0 or 1, got {self.logit_shift}")
        if self.autoregressive and (self.attention != "block_causal:1" or self.logit_shift != 1):
            raise ValueError("an autoregressive model attends causally (block_causal:1) with logit_shift 1")
        if self.mask_id in self.eos_ids:
            raise ValueError(f"mask id {self.mask_id} cannot also be an EOS id")
