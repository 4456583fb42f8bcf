"""Built-in tasks: determinism, split disjointness, verifiable arith answers, tolerant scoring, GSM8K loader."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from unmask.bench.tasks import TASKS, Example, get_task
from unmask.bench.tasks.arith import MAX_ANSWER_CHARS, MAX_QUESTION_CHARS, MAX_VALUE, ArithTask, max_answer_chars
from unmask.bench.tasks.jsonl import JsonlTask
from unmask.errors import ConfigError

GSM8K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k"
GENERATED = ["arith", "sort", "copy", "two-modes"]
STEP = re.compile(r"(\d+)([+\-*])(\d+)=(\d+)\.")


def test_registry_lists_every_builtin_task() -> None:
    assert {"arith", "sort", "copy", "two-modes", "gsm8k"} <= set(TASKS.names())


@pytest.mark.parametrize("name", GENERATED)
def test_examples_are_deterministic_by_seed(name: str) -> None:
    a, b = get_task(name, seed=3), get_task(name, seed=3)
    assert a.examples("train", 50) == b.examples("train", 50)
    assert a.examples("test", 50) == b.examples("test", 50)
    assert a.examples("test", 20) == a.examples("test", 50)[:20]
    if name != "two-modes":
        assert get_task(name, seed=4).examples("test", 50) != a.examples("test", 50)


@pytest.mark.parametrize("name", ["arith", "sort", "copy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_train_and_test_questions_are_disjoint(name: str, seed: int) -> None:
    task = get_task(name, seed=seed)
    train = {ex.question for ex in task.examples("train", 3000)}
    test = [ex.question for ex in get_task(name, seed=seed + 1).examples("test", 300)]
    assert len(set(test)) == len(test)
    assert not train & set(test)


def test_ids_are_unique_and_name_the_split() -> None:
    task = get_task("two-modes")
    ids = [ex.id for split in ("train", "test") for ex in task.examples(split, 40)]
    assert len(set(ids)) == len(ids) and ids[0] == "two-modes-train-0" and ids[-1] == "two-modes-test-39"


def test_bad_split_size_and_kwargs_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        get_task("arith").examples("dev")
    with pytest.raises(ConfigError):
        get_task("arith", size={"valid": 3})
    with pytest.raises(ConfigError):
        get_task("arith", sede=1)
    with pytest.raises(ConfigError):
        get_task("two-modes", length=7)
    with pytest.raises(ConfigError):
        get_task("nope")


def test_size_sets_the_default_count() -> None:
    task = get_task("arith", size={"test": 7})
    assert len(task.examples()) == 7 and len(task.examples("test", 3)) == 3


def check_worked_answer(example: Example) -> None:
    """Re-evaluate every step; each step starts from the previous result; the final number is the target."""
    body, final = example.answer.split(" #### ")
    steps = STEP.findall(body)
    assert 1 <= len(steps) <= 3 and " ".join(f"{a}{op}{b}={c}." for a, op, b, c in steps) == body
    assert all(len(number) == 2 for step in steps for number in (step[0], step[2], step[3]))
    value = int(steps[0][0])
    assert f" {value} " in example.question
    for a, op, b, c in steps:
        assert int(a) == value
        assert b in ("02", "03") if op == "*" else re.search(rf"\b{int(b)}\b", example.question)
        value = {"+": value + int(b), "-": value - int(b), "*": value * int(b)}[op]
        assert value == int(c) and 0 < value <= MAX_VALUE
    assert final == example.target == str(value)


def test_every_arith_answer_rechecks() -> None:
    task = ArithTask()
    for example in task.examples("train", 2000) + task.examples("test", 300):
        check_worked_answer(example)
        assert task.score(example, example.answer) == 1.0


def test_arith_lengths_within_documented_maxima() -> None:
    examples = ArithTask(seed=5).examples("train", 3000)
    assert max(len(ex.question) for ex in examples) <= MAX_QUESTION_CHARS == 90
    assert max(len(ex.answer) for ex in examples) <= max_answer_chars() == MAX_ANSWER_CHARS
    assert all(len(ex.answer) + 4 <= ArithTask.gen_length for ex in examples)
    assert min(len(ex.question) for ex in examples) >= 30


def test_arith_max_steps() -> None:
    assert all(ex.answer.count("=") == 1 for ex in ArithTask(max_steps=1).examples("test", 100))
    with pytest.raises(ConfigError):
        ArithTask(max_steps=4)


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("23+45=68. 68-12=56. #### 56", 1.0),
        ("#### 56", 1.0),
        ("####56", 1.0),
        ("#### 56 pens, done. 99", 1.0),
        ("#### 56.", 1.0),
        ("#### 12 #### 56", 1.0),
        ("#### 56 #### 12", 0.0),
        ("#### 56<|eos|>#### 12", 1.0),
        ("#### 560", 0.0),
        ("#### 56.5", 0.0),
        ("#### -56", 0.0),
        ("56", 0.0),
        ("the answer is 56", 0.0),
        ("#### ", 0.0),
        ("####", 0.0),
        ("", 0.0),
        ("<|mask|><|mask|>", 0.0),
        ("#### " + "9" * 400, 0.0),
    ],
)
def test_arith_score_is_tolerant(completion: str, score: float) -> None:
    example = Example("arith-test-x", "q", "23+45=68. 68-12=56. #### 56", "56")
    assert ArithTask().score(example, completion) == score


def test_arith_score_negative_target() -> None:
    assert ArithTask().score(Example("x", "q", "#### -3", "-3"), "1-4=-3. #### -3") == 1.0


def test_two_modes_balanced_and_scored() -> None:
    task = get_task("two-modes")
    train = task.examples("train", 100)
    assert {ex.question for ex in train} == {"pattern:"} and task.prompt(train[0]) == "pattern:\n"
    assert sum(ex.answer == "AB" * 8 for ex in train) == 50 and sum(ex.answer == "BA" * 8 for ex in train) == 50
    ex = task.examples("test", 1)[0]
    for good in ("ABABABABABABABAB", "BABABABABABABABA", "BABABABABABABABA \n", "ABABABABABABABAB<|eos|><|eos|>"):
        assert task.score(ex, good) == 1.0
    for bad in ("ABBAABABABABABAB", "ABABABABABABABA", "ABABABABABABABABA", "", "AB AB", "ABABABABABABABAB\nAB"):
        assert task.score(ex, bad) == 0.0
    assert get_task("two-modes", length=4).examples("train", 2)[0].answer in ("ABAB", "BABA")


@pytest.mark.parametrize("name", ["sort", "copy"])
def test_sort_and_copy(name: str) -> None:
    task = get_task(name)
    for ex in task.examples("test", 200):
        items = ex.question.split(": ")[1].split(" ")
        assert 4 <= len(items) <= 8
        assert ex.answer.split(" ") == (sorted(items) if name == "sort" else items)
        assert task.score(ex, ex.answer + "<|eos|>") == 1.0 and task.score(ex, ex.answer[:-1]) == 0.0
        assert len(ex.answer) + 4 <= task.gen_length


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def small_gsm8k(tmp_path: Path) -> Path:
    rows = [{"question": f"What is {i} + 1000?", "answer": f"{i}+1000={i + 1000}\n#### {i + 1000:,}"} for i in range(5)]
    write_jsonl(tmp_path / "train.jsonl", rows[:3])
    write_jsonl(tmp_path / "test.jsonl", rows[3:] + [{"question": "Half of 5?", "answer": "#### 2.5"}])
    return tmp_path


def test_jsonl_loader_on_a_small_file(small_gsm8k: Path) -> None:
    task = get_task("gsm8k", path=small_gsm8k, shots=2)
    test = task.examples()
    assert [ex.target for ex in test] == ["1003", "1004", "2.5"] and test[0].id == "gsm8k-test-0"
    prompt = task.prompt(test[0])
    assert prompt.count("Question: ") == 3 and prompt.endswith("Question: What is 3 + 1000?\nAnswer:")
    assert prompt.startswith("Question: What is 0 + 1000?\nAnswer: 0+1000=1000\n#### 1,000\n\n")
    assert task.prompt(task.examples("train")[0]).count("What is 0") == 1  # never its own shot
    assert JsonlTask(path=small_gsm8k / "test.jsonl").examples("test", 1) == test[:1]
    assert len(task.examples("train", 2)) == 2


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("so 1,003 in all.\n#### 1,003", 1.0),
        ("#### 1003.0 dollars", 1.0),
        ("#### 1003<|eos|>", 1.0),
        ("#### 7 and then #### 1003", 1.0),
        ("1003 is wrong, it is 1004", 0.0),
        ("3 plus 1000 is 1003.", 1.0),
        ("#### none, maybe 1003", 1.0),
        ("", 0.0),
        ("no idea", 0.0),
        ("#### -1003", 0.0),
    ],
)
def test_jsonl_score(small_gsm8k: Path, completion: str, score: float) -> None:
    task = get_task("gsm8k", path=small_gsm8k)
    assert task.score(task.examples()[0], completion) == score


def test_jsonl_float_target(small_gsm8k: Path) -> None:
    task = get_task("gsm8k", path=small_gsm8k)
    example = task.examples()[2]
    assert task.score(example, "#### 2.5") == 1.0 and task.score(example, "#### 2.50") == 1.0
    assert task.score(example, "#### 2") == 0.0


def test_jsonl_errors(tmp_path: Path, small_gsm8k: Path) -> None:
    with pytest.raises(ConfigError):
        get_task("gsm8k", path=tmp_path / "missing")
    with pytest.raises(ConfigError):
        get_task("gsm8k", path=small_gsm8k / "test.jsonl", shots=1)
    with pytest.raises(ConfigError):
        get_task("gsm8k", path=small_gsm8k, shots=-1)
    with pytest.raises(ConfigError):
        get_task("gsm8k", path=small_gsm8k, shots=9).prompt(Example("x", "q", "#### 1", "1"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "no marker"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.jsonl:1"):
        get_task("gsm8k", path=bad).examples()
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.jsonl:1"):
        get_task("gsm8k", path=bad).examples()


def test_jsonl_default_path_needs_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="path="):
        get_task("gsm8k")


def test_jsonl_real_gsm8k() -> None:
    if not GSM8K.is_dir():
        pytest.skip(f"GSM8K data not found at {GSM8K}")
    task = get_task("gsm8k", path=GSM8K, shots=5)
    test, train = task.examples(), task.examples("train")
    assert (len(test), len(train)) == (1319, 7473)
    assert test[0].target == "18" and all(task.score(ex, ex.answer) == 1.0 for ex in test)
    assert task.prompt(test[0]).count("Question: ") == 6
    assert not {ex.question for ex in test} & {ex.question for ex in train}
