"""Studies: create or load one (refusing a name that exists with other objectives), the worker loop
that runs trials until the study has exactly its budget of finished trials, and ranking.

A trial counts toward the budget when it is COMPLETE or PRUNED (pruned by the pruner, or rejected by
a constraint: invalid parameters, too few trades, an undefined objective). A FAILED trial (a crash,
Ctrl-C, a worker killed and failed by the heartbeat check) does not count, so it is run again."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from tradeforge.optimize.objectives import Objective
from tradeforge.optimize.space import SearchSpace, params_hash
from tradeforge.optimize.storage import CreationLock, Heartbeat
from tradeforge.resilience.errors import ConfigError, Problem

log = logging.getLogger("tradeforge.optimize")
SPEC_KEY = "tradeforge_spec"
REPORT_KEY = "tradeforge_report"
OBJECTIVES_KEY = "tradeforge_objectives"
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_CONSECUTIVE_ERRORS = 3
WAIT_SECONDS = 0.2  # how often a worker with nothing left to start checks whether the last trials finished

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Evaluation:
    """A trial's outcome: objective values, or the reason it was rejected; metrics for the ranking."""

    values: list[float] | None
    metrics: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Evaluator(Protocol):
    space: SearchSpace

    def evaluate(self, params: dict[str, Any], trial: optuna.Trial) -> Evaluation:
        """Score one parameter set; may call trial.report and raise optuna.TrialPruned."""
        ...


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    objectives: list[Objective],
    *,
    create: bool = True,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study `name`, created when missing (if `create`). An existing study with other objectives
    or directions is a ConfigError and is not modified."""
    directions = [o.direction for o in objectives]
    names = [o.name for o in objectives]
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        study_id = None
    if study_id is None:
        if not create:
            known = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
            raise ConfigError([Problem("--study", f"no such study in the storage (studies: {known})", name)])
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        if not study.user_attrs.get(OBJECTIVES_KEY):
            study.set_user_attr(OBJECTIVES_KEY, names)
    else:
        existing = [d.name.lower() for d in storage.get_study_directions(study_id)]
        stored_names = storage.get_study_user_attrs(study_id).get(OBJECTIVES_KEY)
        if existing != directions or (stored_names is not None and stored_names != names):
            was = ", ".join(stored_names or []) or "unknown objectives"
            raise ConfigError(
                [
                    Problem(
                        "--study",
                        f"study {name!r} exists with other objectives ({was}; {', '.join(existing)}), "
                        f"not {', '.join(names)} ({', '.join(directions)}); choose another --study name",
                        name,
                    )
                ]
            )
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    return study


def load_study(storage: optuna.storages.RDBStorage, name: str) -> optuna.Study:
    """An existing study, for workers and results; ConfigError naming the studies when it is missing."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        known = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
        raise ConfigError([Problem("--study", f"no such study in the storage (studies: {known})", name)]) from None
    return optuna.load_study(storage=storage, study_name=name)


def counted(trials: list[FrozenTrial]) -> int:
    return sum(t.state in COUNTED for t in trials)


def run_worker(
    study: optuna.Study,
    evaluator: Evaluator,
    lock: CreationLock,
    budget: int,
    *,
    deadline: float | None = None,
    after_trial: Callable[[], None] | None = None,
) -> int:
    """Run trials until the study holds `budget` counted trials (or `deadline`, a time.monotonic()
    value, passes); returns how many this worker finished. Safe to run in any number of processes."""
    storage: Any = study._storage  # Optuna wraps the RDBStorage in a cache that forwards heartbeats
    finished = 0
    errors = 0
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with Interrupts() as interrupts, _long_lived_objects_frozen():
        while deadline is None or time.monotonic() < deadline:
            with interrupts.deferred(), lock, _heartbeat_warnings_off():
                optuna.storages.fail_stale_trials(study)
                if lock.exclusive:
                    _fail_orphans(study)
                trials = study.get_trials(deepcopy=False)
                done = counted(trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                trial = None
                if done + running < budget:
                    trial = study.ask()
                    storage.record_heartbeat(trial._trial_id)
                    # Proposed before the lock is released, so the next trial, in whatever process, knows
                    # these parameters: TPE's constant liar steers away from them, and a twin waits for them.
                    try:
                        proposal: _Proposal | Exception = _propose(trial, evaluator, worker)
                    except Exception as exc:  # failed below like any trial error, once the lock is free
                        proposal = exc
            if interrupts.received:
                if trial is not None:
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise KeyboardInterrupt
            if trial is None:
                if done >= budget or running == 0:
                    break
                time.sleep(WAIT_SECONDS)  # the last trials run elsewhere: wait until they finish or go stale
                continue
            heartbeat = Heartbeat(storage, trial._trial_id)
            try:
                if isinstance(proposal, Exception):
                    raise proposal
                _run_trial(study, trial, proposal, evaluator, trials)
                errors = 0
                finished += 1
            except KeyboardInterrupt:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            except Exception as exc:
                errors += 1
                log.error("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    raise
            finally:
                heartbeat.stop()
            # A backtest leaves reference cycles (Backtrader lines and their owners) holding its arrays;
            # collecting them now, not whenever the collector gets round to it, keeps a worker's memory flat.
            # It is cheap because the worker's long-lived objects are frozen out of the collector's scans.
            with interrupts.deferred():
                gc.collect()
            interrupts.check()
            if after_trial is not None:
                after_trial()
    return finished


def _fail_orphans(study: optuna.Study) -> None:
    """Fail running trials that never got their worker's attributes. A worker creates a trial, records
    its first heartbeat and proposes its parameters all under the creation lock, so while we hold the
    lock such a trial belongs to a worker killed in between; without a heartbeat Optuna would never
    see it go stale, and the study would wait for it forever."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" not in trial.user_attrs:
            log.warning("trial %d was left behind by a worker that died while creating it: failed", trial.number)
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Exempt everything alive before the first trial (modules, candles, the storage) from garbage
    collection scans: a full collection after each trial then walks only what trials made, about a
    tenth of the objects, instead of costing some 5 % of a trial."""
    gc.collect()  # freeze no garbage
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Interrupts:
    """Ctrl-C (SIGINT) for the worker loop: raised as KeyboardInterrupt at once, except inside
    `deferred()` blocks, and remembered as a flag. Python runs a signal handler in whatever code is
    executing, and a KeyboardInterrupt raised inside a finalizer or weakref callback (the garbage
    collector runs many after a backtest) is printed and dropped; `check()` raises it again later.
    Deferring matters while a trial is created: one without its first heartbeat could never be
    recognised as stale, and would keep the study's count from closing."""

    def __init__(self) -> None:
        self.received = False
        self._deferring = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) not in (
            signal.SIG_IGN,
            None,
        ):  # not ours to handle from another thread; ignored on purpose under nohup or as a background job
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        if not self._deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def check(self) -> None:
        if self.received:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class _Proposal:
    """A trial's parameters, as stored in it, and when it started (wall and CPU clocks)."""

    params: dict[str, Any]
    digest: str
    started: float
    cpu_started: float


def _propose(trial: optuna.Trial, evaluator: Evaluator, worker: str) -> _Proposal:
    started, cpu_started = time.perf_counter(), time.process_time()
    params = evaluator.space.suggest(trial)
    digest = params_hash(params)
    trial.set_user_attr("params", params)
    trial.set_user_attr("params_hash", digest)
    trial.set_user_attr("worker", worker)
    return _Proposal(params, digest, started, cpu_started)


def _run_trial(
    study: optuna.Study, trial: optuna.Trial, proposal: _Proposal, evaluator: Evaluator, known: list[FrozenTrial]
) -> None:
    params, digest = proposal.params, proposal.digest
    twin = _twin_outcome(study, known, digest)
    if twin is not None:  # identical parameters: reuse the stored outcome instead of a second backtest
        trial.set_user_attr("duplicate_of", twin.number)
        for key in ("metrics", "rejected", "folds"):
            if key in twin.user_attrs:
                trial.set_user_attr(key, twin.user_attrs[key])
        if twin.state == TrialState.COMPLETE:
            study.tell(trial, twin.values)
        else:
            study.tell(trial, state=TrialState.PRUNED)
        return
    try:
        evaluation = evaluator.evaluate(params, trial)
    except optuna.TrialPruned:
        _record_time(trial, proposal)
        study.tell(trial, state=TrialState.PRUNED)
        return
    _record_time(trial, proposal)
    trial.set_user_attr("metrics", evaluation.metrics)
    trial.set_user_attr("rss_mb", _rss_mb())
    for key, value in evaluation.extra.items():
        trial.set_user_attr(key, value)
    if evaluation.values is None:
        trial.set_user_attr("rejected", evaluation.rejected or "rejected")
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, evaluation.values)


def _twin_outcome(study: optuna.Study, known: list[FrozenTrial], digest: str) -> FrozenTrial | None:
    """A cacheable outcome of an earlier trial (`known`: those created before this one) with the same
    parameters. A twin still running in another worker is waited for rather than backtested twice at
    once; waiting only for earlier trials, two twins never wait for each other. A twin whose worker died
    is failed here as stale, and then this trial runs its own backtest."""
    twins = [t for t in known if t.user_attrs.get("params_hash") == digest]
    while True:
        done = next((t for t in twins if _cacheable(t)), None)
        if done is not None or not any(t.state == TrialState.RUNNING for t in twins):
            return done
        time.sleep(WAIT_SECONDS)
        with _heartbeat_warnings_off():
            optuna.storages.fail_stale_trials(study)
        numbers = {t.number for t in twins}
        twins = [t for t in study.get_trials(deepcopy=False) if t.number in numbers]


@contextlib.contextmanager
def _heartbeat_warnings_off() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # we beat ourselves
        yield


def _record_time(trial: optuna.Trial, proposal: _Proposal) -> None:
    """Wall and CPU seconds of the trial: their ratio tells a busy machine from a slow trial."""
    trial.set_user_attr("seconds", round(time.perf_counter() - proposal.started, 3))
    trial.set_user_attr("cpu_seconds", round(time.process_time() - proposal.cpu_started, 3))


def _cacheable(trial: FrozenTrial) -> bool:
    """Finished with a result that depends on the parameters alone (not on the pruner's mood)."""
    return trial.state == TrialState.COMPLETE or (trial.state == TrialState.PRUNED and "rejected" in trial.user_attrs)


def _rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials best first: by the objective (single), or Pareto front first, then by the first
    objective (multi)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    sign = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    front: set[int] = set()
    if len(sign) > 1:
        front = {t.number for t in study.best_trials}
    return sorted(complete, key=lambda t: (t.number not in front, -sign[0] * t.values[0], t.number))


def pareto_numbers(study: optuna.Study) -> set[int]:
    return {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
