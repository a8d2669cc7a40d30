"""Studies on SQLite and PostgreSQL: the trial budget is exact and resumable, identical parameters are
scored once, constraints reject trials, a study's objectives cannot be changed under it, and an
exported trial reproduces its metric in a plain backtest."""

from __future__ import annotations

import datetime as dt
import gc
import os
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tradeforge.config.loader import load_config
from tradeforge.engine.backtest import run_backtest
from tradeforge.engine.optimization import (
    StudyRequest,
    export_config,
    open_existing,
    prepare,
    results_rows,
    run_prepared,
    study_report,
)
from tradeforge.feeds.synthetic import generate
from tradeforge.optimize.storage import open_storage
from tradeforge.resilience.errors import ConfigError

SPACE = {"sma_cross": {"fast": {"low": 5, "high": 20}, "slow": {"low": 25, "high": 60}}, "percent_equity": False}


def bot(tmp_path: Path, **optimize: Any) -> Path:
    path = tmp_path / "bot.yaml"
    document = {
        "name": "opt-bot",
        "data_dir": str(tmp_path / "user_data"),
        "data": {"source": "sample", "timeframe": "1h", "start": "2023-01-01", "end": "2023-02-15"},
        "strategy": {"preset": "sma_cross"},
        "optimize": {"space": SPACE, "seed": 7, **optimize},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def counted_states(url: str, name: str) -> list[TrialState]:
    study = optuna.load_study(storage=open_storage(url), study_name=name)
    return [t.state for t in study.get_trials()]


def test_study_finishes_exactly_its_budget_and_resumes_toward_it(db_url: str, tmp_path: Path) -> None:
    config = bot(tmp_path)
    first = prepare(StudyRequest([config], trials=4, storage=db_url))
    assert run_prepared(first).done == 4
    before = {t.number: t.params for t in first.study.get_trials()}
    again = prepare(StudyRequest([config], trials=7, storage=db_url))
    assert run_prepared(again).done == 7
    trials = again.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(7))
    assert {t.number: t.params for t in trials if t.number in before} == before  # earlier trials kept
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in counted_states(db_url, "opt-bot")) == 7
    assert run_prepared(prepare(StudyRequest([config], trials=7, storage=db_url))).done == 7  # nothing left to do


def test_jobs_workers_finish_the_budget_and_leave_the_commands_own_connection_working(
    db_url: str, tmp_path: Path
) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=6, storage=db_url))
    assert run_prepared(prepared, jobs=2).done == 6
    assert study_report(prepared)["n_trials"] == 6  # the command's storage, used before and after the fork
    again = prepare(StudyRequest([bot(tmp_path)], trials=9, storage=db_url))
    assert run_prepared(again, jobs=2).done == 9
    trials = again.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(9))
    assert os.getpid() not in {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials}


@pytest.mark.timeout(180)
def test_trial_of_a_worker_killed_while_creating_it_is_failed_and_replaced(db_url: str, tmp_path: Path) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=3, storage=db_url))
    with pytest.warns(UserWarning, match="Heartbeat of storage"):  # Optuna's note: not under Study.optimize
        orphan = prepared.study.ask()  # created, then killed before its first heartbeat and its parameters
    assert run_prepared(prepared).done == 3
    states = {t.number: t.state for t in prepared.study.get_trials()}
    assert states[orphan.number] == TrialState.FAIL
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states.values()) == 3


def test_identical_parameters_are_scored_once(tmp_path: Path) -> None:
    config = bot(tmp_path, space={"sma_cross": {"fast": [8, 12], "slow": 40}, "percent_equity": False})
    prepared = prepare(StudyRequest([config], trials=6))
    run_prepared(prepared)
    trials = prepared.study.get_trials()
    fresh = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert all(t.user_attrs["seconds"] > 0 and t.user_attrs["cpu_seconds"] > 0 for t in fresh)
    assert len(trials) == 6 and len(fresh) == 2
    for trial in trials:
        twin = trials[trial.user_attrs.get("duplicate_of", trial.number)]
        assert trial.values == twin.values and trial.user_attrs["params"] == twin.user_attrs["params"]


def test_a_twin_running_in_the_other_worker_is_waited_for_not_backtested_again(tmp_path: Path) -> None:
    config = bot(tmp_path, space={"sma_cross": {"fast": [8, 12], "slow": 40}, "percent_equity": False})
    prepared = prepare(StudyRequest([config], trials=12))
    assert run_prepared(prepared, jobs=2).done == 12
    trials = prepared.study.get_trials()
    backtested = [t.user_attrs["params_hash"] for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(backtested) == len(set(backtested))  # each parameter set once, though both workers drew it
    for trial in trials:
        twin = trials[trial.user_attrs.get("duplicate_of", trial.number)]
        assert trial.values == twin.values and twin.number <= trial.number


def test_min_trades_rejects_degenerate_trials(tmp_path: Path) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=3, min_trades=10_000))
    run_prepared(prepared)
    trials = prepared.study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3
    assert all("below optimize.min_trades" in t.user_attrs["rejected"] for t in trials)


def test_invalid_parameter_combinations_are_rejected_not_run(tmp_path: Path) -> None:
    config = bot(tmp_path, space={"sma_cross": {"fast": [30], "slow": [25]}, "percent_equity": False})
    prepared = prepare(StudyRequest([config], trials=1))
    run_prepared(prepared)
    (trial,) = prepared.study.get_trials()
    assert trial.state == TrialState.PRUNED and "must be smaller than slow" in trial.user_attrs["rejected"]


def test_existing_study_with_other_objectives_is_refused_and_left_intact(db_url: str, tmp_path: Path) -> None:
    config = bot(tmp_path)
    run_prepared(prepare(StudyRequest([config], trials=2, storage=db_url)))
    with pytest.raises(ConfigError, match="exists with other objectives"):
        prepare(StudyRequest([config], trials=5, storage=db_url, objectives=["sharpe", "max_drawdown"]))
    with pytest.raises(ConfigError, match="exists with other objectives"):
        prepare(StudyRequest([config], trials=5, storage=db_url, objectives=["sortino"]))
    study = optuna.load_study(storage=open_storage(db_url), study_name="opt-bot")
    assert len(study.get_trials()) == 2 and len(study.directions) == 1
    assert study.user_attrs["tradeforge_spec"]["config"]["optimize"]["trials"] == 2


def test_unknown_objective_and_bad_storage_are_config_errors(tmp_path: Path) -> None:
    config = bot(tmp_path)
    with pytest.raises(ConfigError, match="unknown objective"):
        prepare(StudyRequest([config], objectives=["sharp"]))
    with pytest.raises(ConfigError, match="not a database URL"):
        prepare(StudyRequest([config], storage="not a url"))
    with pytest.raises(ConfigError) as caught:
        prepare(StudyRequest([config], storage="postgresql://bob:hunter2@127.0.0.1:1/db"))
    assert "cannot open the study storage" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "bob:***@" in str(caught.value)


def test_pareto_study_ranks_the_front_first(tmp_path: Path) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=6, objectives=["sharpe", "max_drawdown"]))
    run_prepared(prepared)
    rows = results_rows(prepared.study, 10)
    front = [r for r in rows if r["pareto"]]
    assert front and rows[: len(front)] == front
    assert all(len(r["values"]) == 2 for r in rows)


def test_exported_config_reproduces_the_trials_metric(db_url: str, tmp_path: Path) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=5, storage=db_url, holdout=0.25))
    run_prepared(prepared)
    report = study_report(prepared)
    assert report["top"][0]["holdout"]["n_trades"] >= 0
    study, spec = open_existing(db_url, "opt-bot")
    out = tmp_path / "best.yaml"
    trial = export_config(study, spec, out)
    result = run_backtest(load_config([out]))
    assert result.metrics["sharpe"] == trial.values[0]
    assert result.metrics == trial.user_attrs["metrics"]
    assert result.end < load_config([bot(tmp_path)]).data.end  # the hold-out stays out


def test_walk_forward_study_scores_out_of_sample_and_reports_in_sample(tmp_path: Path) -> None:
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=4, walk_forward=2, holdout=0.2))
    run_prepared(prepared)
    report = study_report(prepared)
    best = report["top"][0]
    assert {"in_sample", "out_of_sample", "holdout"} <= set(best)
    complete = [t for t in prepared.study.get_trials() if t.state == TrialState.COMPLETE]
    for trial in complete:
        folds = trial.user_attrs["folds"]
        assert len(folds) == 2 and trial.values[0] == pytest.approx(sum(f[0] for f in folds) / 2)
    assert 0.0 <= report["deflated_sharpe"]["value"] <= 1.0


def test_custom_objective_function_scores_and_sets_the_direction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_objectives.py").write_text(
        "def exposure(result):\n    return result.metrics['exposure']\nexposure.direction = 'minimize'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=3, objectives=["my_objectives:exposure"]))
    run_prepared(prepared)
    assert prepared.study.direction == optuna.study.StudyDirection.MINIMIZE
    for trial in prepared.study.get_trials(states=(TrialState.COMPLETE,)):
        assert trial.values == [trial.user_attrs["metrics"]["exposure"]]
    with pytest.raises(ConfigError, match="cannot import the objective function"):
        prepare(StudyRequest([bot(tmp_path)], objectives=["my_objectives:nope"], study="other"))


def test_median_pruner_stops_trials_between_walk_forward_folds(tmp_path: Path) -> None:
    config = bot(tmp_path, space={"sma_cross": {"fast": {"low": 3, "high": 25}, "slow": 30}, "percent_equity": False})
    prepared = prepare(StudyRequest([config], trials=14, walk_forward=3, min_trades=0, end=dt.datetime(2023, 6, 30)))
    run_prepared(prepared)
    trials = prepared.study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED and "rejected" not in t.user_attrs]
    assert pruned, "some trial should score below the median of earlier trials at a fold"
    assert all(1 <= len(t.intermediate_values) < 3 for t in pruned)  # stopped before its last fold
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 14


def test_sqlite_study_commits_in_wal_mode_without_waiting_for_the_disk(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{(tmp_path / 'optuna.sqlite').as_posix()}")
    for _ in range(2):  # every connection of the pool, not only the first
        with storage.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        storage.engine.dispose()


def test_trials_run_with_long_lived_objects_frozen_and_the_collector_is_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gc_probe.py").write_text(
        "import gc\nseen = []\ndef frozen(result):\n    seen.append(gc.get_freeze_count())\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    frozen_before = gc.get_freeze_count()
    prepared = prepare(StudyRequest([bot(tmp_path)], trials=2, objectives=["gc_probe:frozen"]))
    run_prepared(prepared)
    import gc_probe  # type: ignore[import-not-found]

    assert len(gc_probe.seen) == 2 and all(n > frozen_before for n in gc_probe.seen)
    assert gc.get_freeze_count() == frozen_before


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only; elsewhere they load the data")
def test_jobs_workers_start_from_the_candles_the_command_already_loaded(tmp_path: Path) -> None:
    data = tmp_path / "BTC-USDT_1h.parquet"
    candles = generate("BTC/USDT", "1h", dt.datetime(2023, 1, 1, tzinfo=dt.UTC), 1500, seed=3, start_price=20_000.0)
    candles.to_frame().to_parquet(data)
    config = tmp_path / "bot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "fork-bot",
                "data_dir": str(tmp_path / "user_data"),
                "data": {"source": "parquet", "path": str(data), "symbols": ["BTC/USDT"], "timeframe": "1h"},
                "strategy": {"preset": "sma_cross"},
                "optimize": {"space": SPACE, "seed": 7},
            }
        )
    )
    prepared = prepare(StudyRequest([config], trials=6))
    data.unlink()  # a worker that loaded the candles again would fail
    assert run_prepared(prepared, jobs=2).done == 6
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in prepared.study.get_trials()}
    assert os.getpid() not in pids
