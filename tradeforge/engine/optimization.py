"""Optimization studies wired to the backtest: a study's spec (the config with the trial-independent
settings), the evaluator that runs one trial through `run_backtest` on candles loaded once per worker,
worker processes, the post-study report (hold-out, in-sample vs out-of-sample, deflated Sharpe) and
exporting a trial as a runnable config."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError

from tradeforge.analytics.metrics import deflated_sharpe_ratio, periods_per_year, returns_from_equity
from tradeforge.config.loader import merged_document, problems_from_validation, redacted
from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import run_backtest
from tradeforge.engine.data import load_candles
from tradeforge.engine.results import BacktestResult
from tradeforge.engine.validation import validate
from tradeforge.feeds.candles import Candles, to_datetime
from tradeforge.feeds.timeframes import TIMEFRAMES
from tradeforge.optimize import objectives as objective_lib
from tradeforge.optimize import walkforward
from tradeforge.optimize.objectives import Objective
from tradeforge.optimize.space import SearchSpace, apply_params, build_space
from tradeforge.optimize.storage import CreationLock, open_storage, parse, shown
from tradeforge.optimize.study import (
    REPORT_KEY,
    SPEC_KEY,
    Evaluation,
    Interrupts,
    counted,
    load_study,
    open_study,
    ranked,
    run_worker,
)
from tradeforge.resilience.errors import ConfigError, DataError, Problem, TradeforgeError
from tradeforge.strategies.registry import Registry, params_model

SPEC_VERSION = 1


@dataclass(frozen=True)
class StudyRequest:
    """What `tradeforge optimize` was asked; None leaves the config's `optimize` value."""

    configs: list[Path]
    trials: int | None = None
    study: str | None = None
    storage: str | None = None
    objectives: list[str] = field(default_factory=list)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    data: str | None = None
    walk_forward: int | None = None
    walk_forward_mode: str | None = None
    holdout: float | None = None
    min_trades: int | None = None
    seed: int | None = None
    datadir: Path | None = None
    environ: Mapping[str, str] | None = None


# --------------------------------------------------------------------------- the study's spec


def study_document(request: StudyRequest) -> dict[str, Any]:
    """The config document a study runs: the user's files and env overrides, command-line options
    written in, relative paths made absolute (workers may start elsewhere). ConfigError on bad input."""
    document = merged_document(request.configs, request.environ)
    try:
        config = BotConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc), source=" + ".join(map(str, request.configs))) from None
    doc = config.model_dump(mode="json", by_alias=True, exclude_unset=True)
    doc["data_dir"] = str((request.datadir or config.data_dir).resolve())
    data = doc.setdefault("data", {})
    if request.data:
        data["source"] = "parquet" if request.data.endswith(".parquet") else "csv"
        data["path"] = str(Path(request.data).resolve())
    elif config.data.path and config.data.source != "sample":
        data["path"] = str(Path(config.data.path).resolve())
    if request.start:
        data["start"] = request.start.isoformat()
    if request.end:
        data["end"] = request.end.isoformat()
    optimize = doc.setdefault("optimize", {})
    given = {
        "trials": request.trials,
        "study": request.study,
        "objectives": request.objectives or None,
        "walk_forward": request.walk_forward,
        "walk_forward_mode": request.walk_forward_mode,
        "holdout": request.holdout,
        "min_trades": request.min_trades,
        "seed": request.seed,
    }
    optimize.update({k: v for k, v in given.items() if v is not None})
    optimize.pop("storage", None)  # where the study lives is not part of it (and may hold a password)
    doc = redacted(doc)  # the study stores it; a backtest needs no secret
    try:
        BotConfig.model_validate(doc)
    except ValidationError as exc:
        problems = problems_from_validation(exc)
        raise ConfigError([_option_problem(p) for p in problems]) from None
    return doc


def _option_problem(problem: Problem) -> Problem:
    options = {
        "optimize.trials": "--trials",
        "optimize.holdout": "--holdout",
        "optimize.walk_forward": "--walk-forward",
    }
    return Problem(options.get(problem.where, problem.where), problem.message, problem.value)


def storage_url(request: StudyRequest, config: BotConfig) -> str:
    """--storage, else optimize.storage, else an SQLite file in the bot's data directory."""
    if request.storage:
        return request.storage
    if config.optimize.storage:
        return config.optimize.storage
    data_dir = (request.datadir or config.data_dir).resolve()
    return f"sqlite:///{(data_dir / 'optuna.sqlite').as_posix()}"


# --------------------------------------------------------------------------- evaluating trials


def cut(candles: list[Candles], window: walkforward.Window) -> list[Candles]:
    """Each symbol's candles inside [window.start, window.end)."""
    parts = []
    for c in candles:
        lo, hi = np.searchsorted(c.timestamp, [window.start, window.end], side="left")
        if hi <= lo:
            raise DataError(f"{c.symbol}: no candles in {_iso(window.start)} .. {_iso(window.end)}")
        parts.append(c.between(to_datetime(int(c.timestamp[lo])), to_datetime(int(c.timestamp[hi - 1]))))
    return parts


def _iso(ns: int) -> str:
    return to_datetime(ns).isoformat()


def all_times(candles: list[Candles]) -> np.ndarray:
    return np.unique(np.concatenate([c.timestamp for c in candles]))


class BacktestEvaluator:
    """Scores a trial's parameters with `run_backtest` on candles loaded once (per worker)."""

    def __init__(self, document: dict[str, Any], registry: Registry | None = None) -> None:
        self.document = document
        self.registry = registry or Registry.default()
        self.config = BotConfig.model_validate(document)
        settings = self.config.optimize
        resolved = validate(self.config, self.registry, check_data=False)
        self.space: SearchSpace = build_space(resolved.cls, settings.space, params_model)
        self.objectives: list[Objective] = objective_lib.resolve_all(settings.objectives, "optimize.objectives")
        self.candles = load_candles(self.config)
        try:
            self.plan = walkforward.plan(
                all_times(self.candles), settings.walk_forward, settings.walk_forward_mode, settings.holdout
            )
        except ValueError as exc:
            raise ConfigError([Problem("optimize.walk_forward", str(exc), settings.walk_forward)]) from None
        self.search = cut(self.candles, self.plan.search)
        self.tests = [cut(self.candles, f.test) for f in self.plan.folds]
        self.prune = settings.prune and len(self.objectives) == 1 and len(self.plan.folds) > 1

    def config_for(self, params: Mapping[str, Any]) -> BotConfig:
        return BotConfig.model_validate(apply_params(self.document, self.space, params))

    def backtest(self, params: Mapping[str, Any], candles: list[Candles]) -> BacktestResult:
        return run_backtest(self.config_for(params), registry=self.registry, candles=candles)

    def evaluate(self, params: dict[str, Any], trial: optuna.Trial) -> Evaluation:
        try:
            config = self.config_for(params)
            validate(config, self.registry, check_data=False)
        except ValidationError as exc:
            return Evaluation(
                None, rejected="invalid parameters: " + "; ".join(map(str, problems_from_validation(exc)))
            )
        except ConfigError as exc:
            return Evaluation(None, rejected="invalid parameters: " + "; ".join(map(str, exc.problems)))
        windows = self.tests or [self.search]
        results: list[BacktestResult] = []
        per_fold: list[list[float | None]] = []
        for step, candles in enumerate(windows):
            result = run_backtest(config, registry=self.registry, candles=candles)
            results.append(result)
            per_fold.append([o.score(result) for o in self.objectives])
            if self.prune:
                known = [v[0] for v in per_fold if v[0] is not None]
                if known:
                    trial.report(float(np.mean(known)), step)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
        metrics = mean_metrics([r.metrics for r in results])
        extra = {"folds": per_fold} if self.tests else {}
        n_trades = int(metrics.get("n_trades") or 0)
        if n_trades < self.config.optimize.min_trades:
            why = f"{n_trades} trades, below optimize.min_trades ({self.config.optimize.min_trades})"
            return Evaluation(None, metrics, why, extra)
        values = []
        for i, objective in enumerate(self.objectives):
            scores = [fold[i] for fold in per_fold]
            if any(s is None or not math.isfinite(s) for s in scores):
                return Evaluation(None, metrics, f"{objective.name} is undefined for these parameters", extra)
            values.append(float(np.mean([float(s) for s in scores if s is not None])))
        return Evaluation(values, metrics, None, extra)


def mean_metrics(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over several windows: trades summed, everything else averaged over defined values."""
    if len(found) == 1:
        return dict(found[0])
    merged: dict[str, Any] = {}
    for key in found[0]:
        values = [m[key] for m in found if m.get(key) is not None]
        if key == "n_trades":
            merged[key] = int(sum(values))
        else:
            merged[key] = float(np.mean(values)) if values else None
    return merged


def make_sampler(document: Mapping[str, Any], index: int) -> optuna.samplers.BaseSampler:
    seed = BotConfig.model_validate(document).optimize.seed
    return optuna.samplers.TPESampler(seed=None if seed is None else seed + index, constant_liar=True)


def make_pruner(evaluator: BacktestEvaluator) -> optuna.pruners.BasePruner:
    if evaluator.prune:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


# --------------------------------------------------------------------------- running a study


@dataclass(frozen=True)
class Snapshot:
    done: int
    budget: int
    best_value: str
    best_params: str


def snapshot(study: optuna.Study, budget: int) -> Snapshot:
    trials = study.get_trials(deepcopy=False)
    best = ranked_from(study, trials)
    if best is None:
        return Snapshot(counted(trials), budget, "-", "-")
    values = ", ".join(f"{v:.4g}" for v in best.values)
    params = ", ".join(f"{k}={_short(v)}" for k, v in best.user_attrs.get("params", best.params).items())
    return Snapshot(counted(trials), budget, values, params)


def ranked_from(study: optuna.Study, trials: list[FrozenTrial]) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return max(complete, key=lambda t: sign * t.values[0])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class Prepared:
    """A study ready to run: its storage, name, document and this process's evaluator."""

    url: str
    name: str
    document: dict[str, Any]
    evaluator: BacktestEvaluator
    study: optuna.Study
    budget: int


def prepare(request: StudyRequest) -> Prepared:
    """Validate everything (config, objectives, space, data, storage) before touching the storage's
    study, then create or load it and record its spec. Every bad input is a ConfigError."""
    document = study_document(request)
    config = BotConfig.model_validate(document)
    url = storage_url(request, config)
    parse(url, "--storage" if request.storage else "optimize.storage")
    evaluator = BacktestEvaluator(document)
    storage = open_storage(url, "--storage" if request.storage else "optimize.storage")
    name = config.optimize.study or config.name
    study = open_study(
        storage, name, evaluator.objectives, sampler=make_sampler(document, 0), pruner=make_pruner(evaluator)
    )
    study.set_user_attr(SPEC_KEY, {"version": SPEC_VERSION, "config": document})
    return Prepared(url, name, document, evaluator, study, config.optimize.trials)


def run_prepared(
    prepared: Prepared,
    jobs: int = 1,
    timeout: float | None = None,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> Snapshot:
    """Run the study to its budget: in this process (jobs=1) or in `jobs` worker processes.

    `on_progress` is first called once the workers exist, so a progress display that starts a thread
    from it is not copied into forked workers."""
    deadline = None if timeout is None else time.time() + timeout
    study, budget = prepared.study, prepared.budget

    def report() -> None:
        if on_progress is not None:
            on_progress(snapshot(study, budget))

    if jobs <= 1:
        report()
        lock = CreationLock(prepared.url, prepared.name)
        try:
            run_worker(
                study,
                prepared.evaluator,
                lock,
                budget,
                deadline=None if deadline is None else time.monotonic() + timeout,  # type: ignore[operator]
                after_trial=report,
            )
        finally:
            lock.close()
        return snapshot(study, budget)
    workers = start_workers(prepared, jobs, deadline)
    try:
        with Interrupts() as interrupts:
            while any(p.is_alive() for p in workers):
                report()  # reads only the trials that changed since the last poll (Optuna caches finished ones)
                for p in workers:
                    p.join(timeout=2.0 / len(workers))
                interrupts.check()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; a signal to us alone is passed on
        for p in workers:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in workers:
            p.join(timeout=30)
        raise
    report()
    failed = [p.exitcode for p in workers if p.exitcode != 0]
    if failed:
        raise TradeforgeError(f"{len(failed)} of {jobs} worker processes failed (exit codes {failed}); see above")
    return snapshot(study, budget)


def start_workers(prepared: Prepared, jobs: int, deadline: float | None) -> list[BaseProcess]:
    """`jobs` worker processes on the prepared study. On Linux they are forked: each starts at once
    with this process's modules and evaluator (candles loaded, space built), where a spawned worker
    would spend a second or two importing and loading before its first trial. Elsewhere fork is unsafe
    (macOS system libraries) or missing, and workers are spawned and load everything themselves."""
    if sys.platform == "linux":
        context: Any = mp.get_context("fork")
        evaluator: BacktestEvaluator | None = prepared.evaluator  # inherited by the child, not pickled
    else:
        context, evaluator = mp.get_context("spawn"), None
    workers = [
        context.Process(target=worker_process, args=(prepared.url, prepared.name, i, deadline, evaluator), daemon=False)
        for i in range(jobs)
    ]
    for process in workers:
        process.start()
    return workers


def worker_process(
    url: str, name: str, index: int, deadline: float | None, evaluator: BacktestEvaluator | None = None
) -> None:
    """A worker started by `--jobs N`: opens the study and runs trials to the budget."""
    try:
        run_study_worker(url, name, index, None if deadline is None else deadline - time.time(), evaluator)
    except KeyboardInterrupt:
        sys.exit(130)
    except TradeforgeError as exc:
        print(f"worker {index}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_study_worker(
    url: str,
    name: str,
    index: int = 0,
    timeout: float | None = None,
    evaluator: BacktestEvaluator | None = None,
) -> int:
    """`tradeforge optimize-worker`: join an existing study and work on it until its budget is met.
    `evaluator` is the study's, already built (a forked worker); None builds it from the stored spec."""
    storage = open_storage(url)
    study = load_study(storage, name)
    if evaluator is None:
        spec = study.user_attrs.get(SPEC_KEY)
        if not spec or spec.get("version") != SPEC_VERSION:
            raise ConfigError([Problem("--study", "was not created by `tradeforge optimize` (no spec stored)", name)])
        evaluator = BacktestEvaluator(spec["config"])
    study = optuna.load_study(
        storage=storage,
        study_name=name,
        sampler=make_sampler(evaluator.document, index),
        pruner=make_pruner(evaluator),
    )
    budget = evaluator.config.optimize.trials
    lock = CreationLock(url, name)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        return run_worker(study, evaluator, lock, budget, deadline=deadline)
    finally:
        lock.close()


# --------------------------------------------------------------------------- after the study


def study_report(prepared: Prepared) -> dict[str, Any]:
    """The top trials on the hold-out and in sample, and the deflated Sharpe ratio of the best; stored
    in the study (user attribute) for `optimize-results`."""
    evaluator, study = prepared.evaluator, prepared.study
    settings = evaluator.config.optimize
    plan = evaluator.plan
    best_first = ranked(study)
    top = []
    for trial in best_first[: settings.top]:
        params = trial.user_attrs.get("params", trial.params)
        row: dict[str, Any] = {
            "number": trial.number,
            "values": trial.values,
            "params": params,
            "out_of_sample" if plan.folds else "in_sample": trial.user_attrs.get("metrics", {}),
        }
        if plan.folds:
            train = [evaluator.backtest(params, cut(evaluator.candles, f.train)).metrics for f in plan.folds]
            row["in_sample"] = mean_metrics(train)
        if plan.holdout is not None:
            row["holdout"] = evaluator.backtest(params, cut(evaluator.candles, plan.holdout)).metrics
        top.append(row)
    report: dict[str, Any] = {"plan": plan_json(plan), "top": top, "n_trials": counted(study.get_trials())}
    if best_first:
        report["deflated_sharpe"] = _deflated(evaluator, study, best_first[0])
    study.set_user_attr(REPORT_KEY, report)
    return report


def _deflated(evaluator: BacktestEvaluator, study: optuna.Study, best: FrozenTrial) -> dict[str, Any]:
    params = best.user_attrs.get("params", best.params)
    windows = evaluator.tests or [evaluator.search]
    returns = np.concatenate([returns_from_equity(evaluator.backtest(params, w).equity_values) for w in windows])
    ppy = periods_per_year(all_times(evaluator.search)) or 1.0
    sharpes = [
        t.user_attrs["metrics"]["sharpe"] / math.sqrt(ppy)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("metrics", {}).get("sharpe") is not None
    ]
    finite = [s for s in sharpes if math.isfinite(s)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else None
    value = deflated_sharpe_ratio(returns, len(finite), variance)
    return {"trial": best.number, "value": value, "n_trials": len(finite)}


def plan_json(plan: walkforward.Plan) -> dict[str, Any]:
    def window(w: walkforward.Window) -> list[str]:
        return [_iso(w.start), _iso(w.end)]

    return {
        "search": window(plan.search),
        "holdout": None if plan.holdout is None else window(plan.holdout),
        "folds": [{"train": window(f.train), "test": window(f.test)} for f in plan.folds],
    }


def open_existing(url: str, name: str) -> tuple[optuna.Study, dict[str, Any]]:
    """A study and its spec, for `optimize-results`."""
    study = load_study(open_storage(url), name)
    spec = study.user_attrs.get(SPEC_KEY) or {}
    return study, spec


def results_rows(study: optuna.Study, top: int) -> list[dict[str, Any]]:
    """The ranking `optimize-results` prints and writes: best first, with parameters and metrics."""
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    rows = []
    for rank, trial in enumerate(ranked(study)[:top], start=1):
        rows.append(
            {
                "rank": rank,
                "number": trial.number,
                "values": trial.values,
                "pareto": trial.number in front,
                "params": trial.user_attrs.get("params", trial.params),
                "metrics": trial.user_attrs.get("metrics", {}),
                "duplicate_of": trial.user_attrs.get("duplicate_of"),
            }
        )
    return rows


def export_config(study: optuna.Study, spec: dict[str, Any], path: Path, number: int | None = None) -> FrozenTrial:
    """Write a runnable config with a trial's parameters (default: the best), over the study's search
    window, so `tradeforge backtest --config PATH` reproduces the trial's in-sample metrics."""
    if not spec:
        raise ConfigError([Problem("--study", "was not created by `tradeforge optimize` (no spec stored)")])
    best_first = ranked(study)
    if number is None:
        if not best_first:
            raise ConfigError([Problem("--study", "has no completed trial to export", study.study_name)])
        trial = best_first[0]
    else:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not matches or matches[0].state != TrialState.COMPLETE:
            raise ConfigError([Problem("--trial", "no completed trial with this number", number)])
        trial = matches[0]
    document = spec["config"]
    evaluator_space = _space_of(document)
    doc = apply_params(document, evaluator_space, trial.user_attrs.get("params", trial.params))
    report = study.user_attrs.get(REPORT_KEY) or {}
    search = (report.get("plan") or {}).get("search")
    if search is None:
        search = _search_window(document)
    data = doc.setdefault("data", {})
    data["start"] = search[0]
    data["end"] = _last_bar_before(document, search[1])
    header = (
        f"# Exported from study {study.study_name!r}, trial {trial.number} "
        f"({', '.join(f'{v:.6g}' for v in trial.values)}).\n"
        "# data.start/data.end are the study's search window (hold-out excluded).\n"
    )
    if report.get("plan", {}).get("folds"):
        header += "# The trial's value is its out-of-sample mean over walk-forward folds, not this window's.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return trial


def _space_of(document: dict[str, Any]) -> SearchSpace:
    config = BotConfig.model_validate(document)
    registry = Registry.default()
    resolved = registry.resolve(config.strategy, TIMEFRAMES.get(config.data.timeframe))
    return build_space(resolved.cls, config.optimize.space, params_model)


def _search_window(document: dict[str, Any]) -> list[str]:
    config = BotConfig.model_validate(document)
    candles = load_candles(config)
    settings = config.optimize
    plan = walkforward.plan(all_times(candles), settings.walk_forward, settings.walk_forward_mode, settings.holdout)
    return [_iso(plan.search.start), _iso(plan.search.end)]


def _last_bar_before(document: dict[str, Any], end_iso: str) -> str:
    """The open time of the last candle before the (exclusive) window end: data.end is inclusive."""
    config = BotConfig.model_validate(document)
    times = all_times(load_candles(config))
    end_ns = int(dt.datetime.fromisoformat(end_iso).timestamp() * 1_000_000) * 1000
    index = int(np.searchsorted(times, end_ns, side="left")) - 1
    return _iso(int(times[max(index, 0)]))


__all__ = ["StudyRequest", "export_config", "prepare", "run_prepared", "run_study_worker", "shown", "study_report"]
