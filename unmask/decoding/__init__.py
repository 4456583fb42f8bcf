"""The sampler design space: schedules, scores, token samplers, commit and remask rules (no model, no cache)."""
from unmask.decoding.commit import COMMIT, CommitPolicy
from unmask.decoding import commit_adaptive  # noqa: F401  (registers eb, hierarchy, dimple, dus, cosine)
from unmask.decoding import commit_klass  # noqa: F401  (registers klass)
from unmask.decoding import commit_slowfast  # noqa: F401  (registers slowfast)
from unmask.decoding import learned_filter  # noqa: F401  (registers learned: Learn2PD)
from unmask.decoding.remask import REMASK, RemaskPolicy
from unmask.decoding import remdm  # noqa: F401  (registers commit and remask 'remdm': MDLM / ReMDM)
from unmask.decoding.schedule import SCHEDULES, Schedule
from unmask.decoding.scores import ALG_ALIASES, SCORES, Score
from unmask.decoding.state import DecodeState
from unmask.decoding.token_sampler import TokenSampler


def canonical_alg(alg: str) -> str:
    """Map the reference implementations' score names onto ours."""
    return ALG_ALIASES.get(alg, alg)


__all__ = ["COMMIT", "REMASK", "SCHEDULES", "SCORES", "CommitPolicy", "DecodeState", "RemaskPolicy",
           "Schedule", "Score", "TokenSampler", "canonical_alg"]
