"""`tradeforge optimize`, `optimize-worker` and `optimize-results` as a user runs them: the installed
console script in subprocesses. Covers resume after SIGKILL, several worker processes on one study
(SQLite with --jobs, PostgreSQL with independent workers), export, and bad input (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tradeforge.optimize.storage import open_storage

SCRIPT = Path(sys.executable).parent / "tradeforge"
SPACE = {"sma_cross": {"fast": {"low": 5, "high": 30}, "slow": {"low": 35, "high": 120}}, "percent_equity": False}
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def write_bot(root: Path, start: str = "2023-01-01", end: str = "2023-03-31", **optimize: Any) -> Path:
    path = root / "bot.yaml"
    document = {
        "name": "cli-bot",
        "data_dir": "user_data",
        "data": {"source": "sample", "timeframe": "1h", "start": start, "end": end},
        "strategy": {"preset": "sma_cross"},
        "optimize": {"space": SPACE, **optimize},
    }
    path.write_text(yaml.safe_dump(document))
    return path


def tf(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], cwd=root, capture_output=True, text=True, timeout=timeout, env=_env(), check=False
    )


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


def trials_of(url: str, study: str = "cli-bot") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(storage=open_storage(url), study_name=study).get_trials()


def sqlite_url(root: Path) -> str:
    return f"sqlite:///{(root / 'user_data' / 'optuna.sqlite').as_posix()}"


def test_optimize_then_results_then_export_reproduces_the_trial(tmp_path: Path) -> None:
    write_bot(tmp_path)
    run = tf(tmp_path, "optimize", "--config", "bot.yaml", "--trials", "5", "--holdout", "20%", "--json", "s.json")
    assert run.returncode == 0, run.stderr
    assert "5/5" in run.stderr and "best" in run.stderr  # the progress bar
    assert "deflated Sharpe ratio" in run.stdout and "hold-out" in run.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["trials"] == 5 and summary["report"]["plan"]["holdout"] is not None
    listed = tf(tmp_path, "optimize-results", "--config", "bot.yaml", "--top", "3", "--json", "r.json")
    assert listed.returncode == 0, listed.stderr
    ranking = json.loads((tmp_path / "r.json").read_text())
    assert [row["rank"] for row in ranking["trials"]] == [1, 2, 3]
    exported = tf(
        tmp_path, "optimize-results", "--storage", sqlite_url(tmp_path), "--study", "cli-bot",
        "--export-config", "best.yaml",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    backtest = tf(tmp_path, "backtest", "--config", "best.yaml", "--json", "result.json")
    assert backtest.returncode == 0, backtest.stderr
    metrics = json.loads((tmp_path / "result.json").read_text())["metrics"]
    assert metrics["sharpe"] == ranking["trials"][0]["values"][0]
    assert metrics["n_trades"] == ranking["trials"][0]["metrics"]["n_trades"]


def test_resume_after_sigkill_continues_the_same_study(tmp_path: Path) -> None:
    write_bot(tmp_path, start="2023-01-01", end="2023-12-31")
    command = [str(SCRIPT), "optimize", "--config", "bot.yaml", "--trials", "25", "--seed", "3"]
    process = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_complete(tmp_path / "user_data" / "optuna.sqlite", process, 3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    url = sqlite_url(tmp_path)
    before = {t.number: (t.params, t.values) for t in trials_of(url) if t.state == TrialState.COMPLETE}
    assert 3 <= len(before) < 25
    rerun = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    trials = trials_of(url)
    assert sum(t.state in COUNTED for t in trials) == 25  # trials done before the kill count toward --trials
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert {n: (t.params, t.values) for t in trials if (n := t.number) in before} == before
    assert all(t.state != TrialState.RUNNING for t in trials)  # the killed trial was failed, then replaced


def wait_for_complete(database: Path, process: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 120
    done = 0
    while done < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        if database.exists():
            try:
                with sqlite3.connect(database, timeout=5) as connection:
                    done = connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            except sqlite3.OperationalError:  # tables not created yet
                continue
    assert process.poll() is None, "the study finished before it could be interrupted; make the trials slower"


def as_in_a_terminal() -> None:
    """Ctrl-C handling as in a terminal, even when the tests run as a background job (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_with_130_and_the_same_command_finishes_the_study(tmp_path: Path, jobs: str) -> None:
    write_bot(tmp_path, start="2023-01-01", end="2023-12-31")
    command = [str(SCRIPT), "optimize", "--config", "bot.yaml", "--trials", "30", "--jobs", jobs]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal
    )
    wait_for_complete(tmp_path / "user_data" / "optuna.sqlite", process, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and b"run the same command again" in stderr
    trials = trials_of(sqlite_url(tmp_path))
    assert all(t.state != TrialState.RUNNING for t in trials)  # interrupted trials are failed at once
    assert sum(t.state in COUNTED for t in trials) < 30
    rerun = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert sum(t.state in COUNTED for t in trials_of(sqlite_url(tmp_path))) == 30


def test_jobs_starts_worker_processes_that_share_the_exact_budget(tmp_path: Path) -> None:
    write_bot(tmp_path, end="2023-12-31")
    command = [str(SCRIPT), "optimize", "--config", "bot.yaml", "--trials", "16", "--jobs", "2"]
    process = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    trials = trials_of(sqlite_url(tmp_path))
    assert sum(t.state in COUNTED for t in trials) == 16
    assert len({t.number for t in trials}) == len(trials)
    pids = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in trials}
    assert process.pid not in pids and 1 <= len(pids) <= 2  # trials ran in the worker processes


def test_two_workers_on_postgresql_finish_exactly_the_budget_between_them(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    write_bot(tmp_path, end="2023-12-31")
    created = tf(tmp_path, "optimize", "--config", "bot.yaml", "--storage", postgres_schema_url, "--trials", "20",
                 "--timeout", "0.001")  # fmt: skip
    assert created.returncode == 0, created.stderr
    command = [str(SCRIPT), "optimize-worker", "--storage", postgres_schema_url, "--study", "cli-bot"]
    workers = [
        subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = trials_of(postgres_schema_url)
    assert sum(t.state in COUNTED for t in trials) == 20
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len(trials)
    finished = [int(out.split("worker finished ")[1].split()[0]) for out, _ in outputs]
    assert sum(finished) <= 20 and all(n >= 1 for n in finished)
    by_worker = {t.user_attrs.get("worker") for t in trials if t.state in COUNTED}
    assert len(by_worker) >= 2, "both workers should have taken trials"


def test_bad_input_exits_2_and_leaves_the_study_intact(tmp_path: Path) -> None:
    write_bot(tmp_path)
    assert tf(tmp_path, "optimize", "--config", "bot.yaml", "--trials", "2").returncode == 0
    url = sqlite_url(tmp_path)
    cases = {
        "malformed storage": (["--storage", "nonsense"], "--storage: not a database URL"),
        "unreachable storage": (
            ["--storage", "postgresql://bob:hunter2@127.0.0.1:1/db"],
            "cannot open the study storage",
        ),
        "unknown objective": (["--objective", "sharpe_ratio"], "unknown objective"),
        "other directions": (["--objective", "sharpe", "--objective", "max_drawdown"], "exists with other objectives"),
    }
    for label, (args, message) in cases.items():
        run = tf(tmp_path, "optimize", "--config", "bot.yaml", "--trials", "5", *args)
        assert run.returncode == 2, (label, run.stderr)
        assert message in run.stderr, (label, run.stderr)
        assert "Traceback" not in run.stderr and "hunter2" not in run.stderr + run.stdout
    overlay = tmp_path / "narrow.yaml"
    overlay.write_text(yaml.safe_dump({"optimize": {"space": {"sma_cross": {"fast": {"low": 20, "high": 10}}}}}))
    run = tf(tmp_path, "optimize", "--config", "bot.yaml", "--config", "narrow.yaml", "--trials", "5")
    assert run.returncode == 2 and "optimize.space.sma_cross.fast.high: is below low" in run.stderr
    missing = tf(tmp_path, "optimize-results", "--storage", url, "--study", "nope")
    assert missing.returncode == 2 and "no such study" in missing.stderr
    trials = trials_of(url)
    assert len(trials) == 2 and all(t.state in COUNTED for t in trials)
    study = optuna.load_study(storage=open_storage(url), study_name="cli-bot")
    assert study.user_attrs["tradeforge_spec"]["config"]["optimize"]["trials"] == 2
