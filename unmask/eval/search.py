"""Design-space search: Optuna over the registered decoding axes for the Pareto front of score vs cost.

One trial = one DecodeConfig, drawn axis by axis (define-by-run, so a knob is drawn only when its member is:
`threshold` only for threshold-style commit rules, `vicinity_size` only with the vicinity cache, …):

    commit rule + its knobs (tokens per step k for the quota rule; threshold; factor; EB γ; low threshold),
    score (alg), block length (divisors of gen_length), cache + its knobs, remask rule + threshold,
    logits fusion (credit), classifier-free guidance scale.

A drawn combination that `DecodeConfig` refuses (e.g. `dual` with one block, `wino` with a cache, guidance
with a cache) is pruned without being decoded: the config's own validation is the constraint, and the
search never keeps a list of its own. Each trial decodes the same first `limit` examples of the task's
test split (`run_bench`, same seed) and reports (score, mean NFE) or (score, seconds per example), score
maximised and cost minimised (Optuna's multi-objective TPE). Studies live in SQLite, so a search resumes
where it stopped: the budget is the total number of trials the study should hold.

After the search, the front's configs and every shipped preset (fitted to the task as `unmask bench` fits
them) are decoded again together on the same examples: the front is reported with re-measured numbers,
and `dominating` lists the front points that dominate every preset measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from unmask.bench.configs import fitted
from unmask.bench.record import BenchRecord
from unmask.bench.run import run_bench
from unmask.bench.tasks import Task
from unmask.config import DecodeConfig
from unmask.engine.llm import LLM
from unmask.errors import ConfigError
from unmask.presets import PRESETS

OBJECTIVES = ("nfe", "seconds")
COMMITS = ("linear", "threshold", "factor", "eb", "hierarchy", "dimple", "klass")
QUOTA_COMMITS = ("linear", "dimple", "klass")  # steps = gen_length / k (linear) or gen_length
THRESHOLD_COMMITS = ("threshold", "hierarchy", "dimple", "klass")
CACHES = ("none", "prefix", "dual", "delayed", "vicinity", "feature", "d2", "elastic")
REMASKS = ("none", "low-confidence", "wino")
TOKENS_PER_STEP = (1, 2, 4, 8, 16)
BLOCKS = (8, 16, 24, 32, 48, 64)


def draw(trial: Any, gen_length: int, seed: int) -> dict[str, Any]:
    """One point of the design space as DecodeConfig values (module docstring)."""
    v: dict[str, Any] = {"gen_length": gen_length, "seed": seed}
    blocks = [b for b in BLOCKS if b <= gen_length and gen_length % b == 0] or [gen_length]
    v["block_length"] = trial.suggest_categorical("block_length", blocks)
    v["commit"] = commit = trial.suggest_categorical("commit", COMMITS)
    v["alg"] = "entropy" if commit == "eb" else trial.suggest_categorical("alg", ("confidence", "margin"))
    if commit == "linear":
        k = trial.suggest_categorical("tokens_per_step", TOKENS_PER_STEP)
        v["steps"] = max(1, gen_length // k)
    elif commit in QUOTA_COMMITS:
        v["steps"] = gen_length
    if commit in THRESHOLD_COMMITS:
        v["threshold"] = round(trial.suggest_float("threshold", 0.5, 0.99, step=0.01), 4)
    if commit == "factor":
        v["factor"] = round(trial.suggest_float("factor", 0.5, 3.0, step=0.1), 4)
    if commit == "eb":
        v["eb_gamma"] = trial.suggest_categorical("eb_gamma", (0.01, 0.03, 0.1, 0.3, 1.0))
    if commit == "hierarchy":
        v["low_threshold"] = round(trial.suggest_float("low_threshold", 0.1, 0.6, step=0.05), 4)
    if commit == "threshold":
        v["logits_fusion"] = trial.suggest_categorical("logits_fusion", ("none", "credit"))
    # floats on a grid, so each point's `--set` line is short and exact
    v["cache"] = cache = trial.suggest_categorical("cache", CACHES)
    if cache == "delayed":
        v["cache_reloading_step"] = trial.suggest_int("cache_reloading_step", 1, 16)
    if cache == "vicinity":
        v["vicinity_size"] = trial.suggest_categorical("vicinity_size", (4, 8, 16))
    if cache == "feature":
        v["response_interval"] = trial.suggest_int("response_interval", 2, 10)
    if cache == "elastic":
        v["gamma"] = round(trial.suggest_float("gamma", 0.5, 0.99, step=0.01), 4)
    v["remask"] = remask = trial.suggest_categorical("remask", REMASKS)
    if remask != "none":
        v["remask_threshold"] = round(trial.suggest_float("remask_threshold", 0.5, 0.99, step=0.01), 4)
    v["cfg_scale"] = trial.suggest_categorical("cfg_scale", (0.0, 0.5, 1.0))
    return v


def set_line(config: DecodeConfig) -> str:
    """The `--set key=value …` flags that rebuild `config` from DecodeConfig's defaults."""
    defaults = DecodeConfig().to_dict()
    return " ".join(f"--set {k}={'none' if v is None else v}" for k, v in config.to_dict().items() if defaults[k] != v)


@dataclass
class FrontPoint:
    label: str
    config: DecodeConfig
    searched: tuple[float, float]  # (score, cost) as measured during the search
    record: BenchRecord | None = None  # re-measured beside the presets
    dominates_all_presets: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {"label": self.label, "config": self.config.to_dict(), "set": set_line(self.config),
               "searched_score": self.searched[0], "searched_cost": self.searched[1],
               "dominates_all_presets": self.dominates_all_presets}
        if self.record is not None:
            out.update(score=self.record.score, score_low=self.record.score_low, score_high=self.record.score_high,
                       nfe=self.record.nfe, seconds_per_example=self.record.seconds_per_example)
        return out


@dataclass
class SearchResult:
    objective: str
    trials: int
    pruned: int
    front: list[FrontPoint]
    presets: list[BenchRecord]
    skipped_presets: dict[str, str] = field(default_factory=dict)  # preset → why it cannot run on this task


def cost_of(record: BenchRecord, objective: str) -> float:
    return record.nfe if objective == "nfe" else record.seconds_per_example


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(score, cost) a dominates b: score ≥ and cost ≤, at least one strictly."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def preset_configs(gen_length: int, block_length: int, seed: int) -> tuple[list[tuple[str, DecodeConfig]], dict]:
    """Every shipped preset fitted to the task; presets the task's shape makes invalid, with the reason."""
    kept, skipped = [], {}
    for name in PRESETS:
        try:
            kept.append((name, DecodeConfig.from_dict({**fitted(name, gen_length, block_length), "seed": seed})))
        except ConfigError as e:
            skipped[name] = str(e)
    return kept, skipped


class Search:
    """An Optuna study over the design space for one model and task (module docstring)."""

    def __init__(self, llm: LLM, task: Task, objective: str = "nfe", limit: int = 64, batch_size: int = 16,
                 seed: int = 0, storage: str | None = None, study_name: str | None = None) -> None:
        try:
            import optuna
        except ImportError:
            raise ConfigError("unmask search needs Optuna: pip install 'unmask[search]'") from None
        if objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.optuna, self.llm, self.task, self.objective = optuna, llm, task, objective
        self.limit, self.batch_size, self.seed = limit, batch_size, seed
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
        self.study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage,
                                         study_name=study_name or f"{task.name}-{objective}", load_if_exists=True)

    def measure(self, configs: list[tuple[str, DecodeConfig]]) -> list[BenchRecord]:
        return run_bench(self.llm, self.task, configs, limit=self.limit, batch_size=self.batch_size,
                         seed=self.seed, invariance_n=0)

    def objective_fn(self, trial: Any) -> tuple[float, float]:
        values = draw(trial, self.task.gen_length, self.seed)
        try:
            config = DecodeConfig.from_dict(values)
        except ConfigError as e:  # the config's own validation is the constraint: prune, never decode
            trial.set_user_attr("refused", str(e))
            raise self.optuna.TrialPruned(str(e)) from None
        trial.set_user_attr("config", config.to_dict())
        record = self.measure([(f"trial {trial.number}", config)])[0]
        return record.score, cost_of(record, self.objective)

    def decoded(self) -> int:
        return sum(t.state == self.optuna.trial.TrialState.COMPLETE for t in self.study.trials)

    def run(self, budget: int, on_trial: Callable[[], None] | None = None) -> None:
        """Run trials until the study holds `budget` decoded ones (pruned draws cost no decode and do not count;
        at most 20 × budget draws in all, so a space the validation mostly refuses still ends)."""
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ConfigError(f"budget must be a positive int, got {budget!r}")
        draws = 0
        while self.decoded() < budget and draws < 20 * budget:
            before = self.decoded()
            self.study.optimize(self.objective_fn, n_trials=1)
            draws += 1
            if on_trial is not None and self.decoded() > before:
                on_trial()

    def front(self) -> list[FrontPoint]:
        """The study's Pareto front by rising cost: one point per distinct (score, cost), its first trial."""
        seen, points = set(), []
        for t in sorted(self.study.best_trials, key=lambda t: (t.values[1], -t.values[0], t.number)):
            if tuple(t.values) in seen:
                continue
            seen.add(tuple(t.values))
            config = DecodeConfig.from_dict(t.user_attrs["config"])
            points.append(FrontPoint(f"search #{t.number}", config, (t.values[0], t.values[1])))
        return points

    def remeasure(self, include_presets: bool = True) -> SearchResult:
        """Decode the front and the presets again, together, on the same examples; mark dominating points."""
        front = self.front()
        presets, skipped = ([], {})
        if include_presets:
            presets, skipped = preset_configs(self.task.gen_length, self.task.gen_length if self.task.gen_length
                                              % 16 else 16, self.seed)
        records = self.measure([(p.label, p.config) for p in front] + presets)
        for point, record in zip(front, records):
            point.record = record
        preset_records = records[len(front):]
        for point in front:
            here = (point.record.score, cost_of(point.record, self.objective))
            point.dominates_all_presets = bool(preset_records) and all(
                dominates(here, (r.score, cost_of(r, self.objective))) for r in preset_records)
        pruned = sum(t.state == self.optuna.trial.TrialState.PRUNED for t in self.study.trials)
        return SearchResult(self.objective, len(self.study.trials), pruned, front, preset_records, skipped)
