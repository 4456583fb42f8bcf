"""The shipped tiny-arith-dparallel student (dParallel certainty forcing from tiny-arith, `unmask distill`): it
loads by name and decodes a whole 48-token answer in one forward far better than its teacher does, on the
first 50 unseen test problems (teacher measured in the same test; a few seconds on 2 cores)."""
import pytest

from tests.arith_runs import accuracy_and_nfe
from unmask import LLM, DecodeConfig
from unmask.models.resolve import bundled_models

pytestmark = pytest.mark.skipif("tiny-arith-dparallel" not in bundled_models(), reason="student asset not built")
N = 50
RECIPES = {
    "one-shot": DecodeConfig.preset("llada", gen_length=48, steps=1, block_length=48),
    "dparallel": DecodeConfig.preset("dparallel", gen_length=48, block_length=16),
}


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str], tuple[float, float]]:
    """{(model, recipe): (accuracy, mean NFE)} for the teacher and the student."""
    out = {}
    for model in ("tiny-arith", "tiny-arith-dparallel"):
        llm = LLM(model, device="cpu")
        for name, cfg in RECIPES.items():
            out[model, name] = accuracy_and_nfe(llm, cfg, N)
    return out


def test_student_one_shot_beats_the_teacher(results) -> None:
    (student, nfe), (teacher, _) = results["tiny-arith-dparallel", "one-shot"], results["tiny-arith", "one-shot"]
    assert nfe == 1 and student >= teacher + 0.1, (student, teacher)


def test_student_entropy_threshold_decoding_needs_fewer_forwards(results) -> None:
    (s_acc, s_nfe), (t_acc, t_nfe) = results["tiny-arith-dparallel", "dparallel"], results["tiny-arith", "dparallel"]
    assert s_nfe < t_nfe and s_acc >= t_acc - 0.04, (s_acc, s_nfe, t_acc, t_nfe)
