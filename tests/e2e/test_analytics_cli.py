"""`tradeforge analyze`, `compare`, `report` and `backtest --report`, run as a user runs them: the
installed console script on result files from real Binance and Yahoo backtests."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradeforge.analytics import metrics as m

SCRIPT = Path(sys.executable).parent / "tradeforge"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not present at {SHARED_DATA}")


def tf(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [str(SCRIPT), *map(str, args)], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("analytics")


@pytest.fixture(scope="module")
def results(work: Path) -> dict[str, Path]:
    """Backtest result files of the sma_cross template on real BTC and ETH hourly and ORCL daily candles."""
    code, _, err = tf("new-config", "--template", "sma_cross", "--output", "bot.yaml", cwd=work)
    assert code == 0, err
    out = {}
    for name, file, timeframe in (
        ("btc", "binance_BTC-USDT_1h.csv", "1h"),
        ("eth", "binance_ETH-USDT_1h.csv", "1h"),
        ("orcl", "yahoo_ORCL_1d.csv", "1d"),
    ):
        env = {"TRADEFORGE__DATA__TIMEFRAME": timeframe, "TRADEFORGE__NAME": name}
        code, _, err = tf(
            "backtest",
            "--config",
            "bot.yaml",
            "--data",
            SHARED_DATA / file,
            "--json",
            f"{name}.json",
            cwd=work,
            env=env,
        )
        assert code == 0, err
        out[name] = work / f"{name}.json"
    return out


def load(path: Path) -> Any:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- analyze


def test_analyze_prints_every_metric_and_writes_the_documented_json(results: dict[str, Path], work: Path):
    code, out, err = tf("analyze", "--result", results["btc"], "--json", "btc-analysis.json", cwd=work)
    assert code == 0, err
    for name in ("sharpe", "var_95_historical", "cvar_99_cornish_fisher", "probabilistic_sharpe_ratio", "sqn"):
        assert name in out
    doc = load(work / "btc-analysis.json")
    result = load(results["btc"])
    assert doc["schema"] == "tradeforge.analysis/1"
    assert tuple(doc["metrics"]) == m.METRIC_NAMES
    assert doc["periods_per_year"] == 8760
    # The analysis agrees with the backtest's own summary wherever both define a metric.
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "exposure"):
        assert doc["metrics"][key] == pytest.approx(result["metrics"][key], rel=1e-12, abs=1e-15), key
    assert doc["metrics"]["n_trades"] == len(result["trades"])
    assert doc["monte_carlo"] is None
    assert doc["monthly_returns"][0]["year"] == 2020


def test_analyze_monte_carlo_is_reproducible_and_a_reshuffle_keeps_final_equity(results: dict[str, Path], work: Path):
    args = ("analyze", "--result", results["eth"], "--monte-carlo", "3000", "--seed", "9")
    assert tf(*args, "--json", "mc1.json", cwd=work)[0] == 0
    assert tf(*args, "--json", "mc2.json", cwd=work)[0] == 0
    first, second = load(work / "mc1.json")["monte_carlo"], load(work / "mc2.json")["monte_carlo"]
    assert first == second
    result = load(results["eth"])
    closed_final = result["start_value"] + sum(t["pnl"] for t in result["trades"])
    assert first["final_equity"]["p50"] == pytest.approx(closed_final, rel=1e-9)
    assert first["simulations"] == 3000 and first["method"] == "trades"
    assert first["max_drawdown"]["p5"] <= first["max_drawdown"]["p95"] <= 0


@pytest.mark.parametrize("method", ["bootstrap", "block"])
def test_analyze_monte_carlo_methods(results: dict[str, Path], work: Path, method: str):
    code, out, err = tf(
        "analyze", "--result", results["orcl"], "--monte-carlo", "1000", "--method", method, "--seed", "1", cwd=work
    )
    assert code == 0, err
    assert f"method {method}" in flat(out) and "probability of ruin" in flat(out)


def test_analyze_equity_csv_gives_the_curve_metrics_and_null_trade_metrics(results: dict[str, Path], work: Path):
    result = load(results["orcl"])
    path = work / "orcl-equity.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "equity"])
        writer.writerows(result["equity"])
    assert tf("analyze", "--equity", path, "--json", "eq.json", cwd=work)[0] == 0
    doc = load(work / "eq.json")
    assert doc["periods_per_year"] == 252
    assert doc["metrics"]["sharpe"] == pytest.approx(result["metrics"]["sharpe"], rel=1e-12)
    assert doc["metrics"]["n_trades"] is None and doc["metrics"]["win_rate"] is None


def test_analyze_trades_gives_trade_metrics_and_null_curve_metrics(results: dict[str, Path], work: Path):
    result = load(results["btc"])
    (work / "trades.json").write_text(json.dumps(result["trades"]))
    assert tf("analyze", "--trades", "trades.json", "--monte-carlo", "500", "--json", "tr.json", cwd=work)[0] == 0
    doc = load(work / "tr.json")
    assert doc["metrics"]["win_rate"] == pytest.approx(result["metrics"]["win_rate"])
    assert doc["metrics"]["sharpe"] is None and doc["metrics"]["max_drawdown"] is None
    assert doc["monte_carlo"]["start_value"] == 10_000.0


def test_analyze_periods_per_year_risk_free_and_trials_are_honoured(results: dict[str, Path], work: Path):
    base = ("analyze", "--result", results["orcl"])
    args = ("--periods-per-year", "365", "--risk-free", "0.02", "--trials", "20", "--json", "rf.json")
    assert tf(*base, *args, cwd=work)[0] == 0
    doc = load(work / "rf.json")
    assert doc["metrics"]["deflated_sharpe_ratio"] < doc["metrics"]["probabilistic_sharpe_ratio"]
    assert doc["periods_per_year"] == 365 and doc["risk_free"] == 0.02
    values = [v for _, v in load(results["orcl"])["equity"]]
    assert doc["metrics"]["sharpe"] == pytest.approx(m.sharpe(m.returns_from_equity(values), 365, 0.02))


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (("--result", "empty.json"), "", "empty.json: the file is empty"),
        (("--result", "broken.json"), '{"equity": [\n  [1, 2],\n  oops', "broken.json:3:3: not valid JSON"),
        (("--result", "other.json"), '{"foo": 1}', "missing 'equity', 'trades', 'start_value'"),
        (("--equity", "dup.csv"), "timestamp,equity\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n", "dup.csv:4:"),
        (
            ("--equity", "text.csv"),
            "timestamp,equity\n2024-01-01,1\n2024-01-02,lots\n",
            "text.csv:3 equity: expected a number",
        ),
        (("--equity", "cols.csv"), "time,value\n2024-01-01,1\n", "missing column(s) timestamp, equity"),
        (("--equity", "badtime.csv"), "timestamp,equity\n2024-01-01,1\nyesterday,2\n", "badtime.csv:3: timestamp"),
        (("--trades", "nopnl.json"), '[{"pnl": 1}, {"symbol": "X"}]', "trades[1]: missing 'pnl'"),
        (("--result", "missing.json"), None, "missing.json: no such file"),
    ],
)
def test_analyze_refuses_bad_input_naming_file_and_line(
    work: Path, args: tuple[str, str], content: str | None, message: str
):
    if content is not None:
        (work / args[1]).write_text(content)
    code, out, err = tf("analyze", *args, cwd=work)
    assert code == 2, out
    assert message in flat(err)
    assert "Traceback" not in err


def test_analyze_result_whose_trades_do_not_match_the_equity_is_refused(results: dict[str, Path], work: Path):
    doc = load(results["btc"])
    doc["trades"][0]["exit_time"] = "2030-01-01T00:00:00+00:00"
    (work / "mismatch.json").write_text(json.dumps(doc))
    code, _, err = tf("analyze", "--result", "mismatch.json", cwd=work)
    assert code == 2 and "trades[0]: exit_time" in flat(err) and "do not match" in flat(err)


def test_analyze_needs_exactly_one_source_and_sane_options(results: dict[str, Path], work: Path):
    assert "exactly one of" in flat(tf("analyze", cwd=work)[2])
    code, _, err = tf("analyze", "--result", results["btc"], "--equity", "x.csv", cwd=work)
    assert code == 2 and "exactly one of" in flat(err)
    code, _, err = tf("analyze", "--result", results["btc"], "--monte-carlo", "10", "--method", "magic", cwd=work)
    assert code == 2 and "--method" in err
    code, _, err = tf("analyze", "--result", results["btc"], "--periods-per-year", "0", cwd=work)
    assert code == 2 and "--periods-per-year" in err


# --------------------------------------------------------------------------- compare


def test_compare_ranks_by_composite_score_and_tests_every_sharpe_pair(results: dict[str, Path], work: Path):
    code, out, err = tf(
        "compare",
        results["btc"],
        results["eth"],
        results["orcl"],
        "--rank-by",
        "sharpe,calmar",
        "--json",
        "cmp.json",
        cwd=work,
    )
    assert code == 0, err
    doc = load(work / "cmp.json")
    ranked = doc["results"]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    # The composite is the mean of (N - rank) / (N - 1) over the ranking metrics.
    for row in ranked:
        assert row["score"] == pytest.approx(sum((3 - r) / 2 for r in row["ranks"].values()) / 2)
    best_sharpe = max(ranked, key=lambda r: r["metrics"]["sharpe"])
    assert best_sharpe["ranks"]["sharpe"] == 1
    tests = doc["sharpe_tests"]
    assert len(tests) == 3
    by_pair = {frozenset((t["a"], t["b"])): t for t in tests}
    assert by_pair[frozenset(("btc", "eth"))]["method"] == "jobson_korkie_memmel"  # same hours
    assert by_pair[frozenset(("btc", "orcl"))]["method"] == "independent"  # different periods
    for t in tests:
        if t["p_value"] is not None and t["p_value"] >= 0.05:
            assert f"Sharpe of {t['a']} vs {t['b']}" in flat(out)
            assert t["significant"] is False


def test_compare_refuses_unknown_metrics_and_a_single_file(results: dict[str, Path], work: Path):
    code, _, err = tf("compare", results["btc"], results["eth"], "--rank-by", "sharpness", cwd=work)
    assert code == 2 and "--rank-by" in err
    code, _, err = tf("compare", results["btc"], cwd=work)
    assert code == 2 and "at least two" in err


# --------------------------------------------------------------------------- reports


@pytest.mark.parametrize("fmt", ["html", "pdf", "xlsx", "json"])
def test_report_writes_each_format(results: dict[str, Path], work: Path, fmt: str):
    code, out, err = tf(
        "report",
        results["orcl"],
        "--format",
        fmt,
        "-o",
        f"report.{fmt}",
        "--monte-carlo",
        "1000",
        "--seed",
        "1",
        cwd=work,
    )
    assert code == 0, err
    assert f"{fmt} report written to report.{fmt}" in flat(out)
    assert (work / f"report.{fmt}").stat().st_size > 0


def test_report_refuses_an_unknown_format_or_no_output(results: dict[str, Path], work: Path):
    code, _, err = tf("report", results["btc"], "--format", "docx", "-o", "r.docx", cwd=work)
    assert code == 2 and "--format" in err
    code, _, err = tf("report", results["btc"], "--format", "html", cwd=work)
    assert code == 2 and "--output" in err


def test_backtest_report_writes_the_report_directly_with_the_candles_under_the_trades(
    work: Path, results: dict[str, Path]
):
    code, out, err = tf(
        "backtest",
        "--config",
        "bot.yaml",
        "--data",
        SHARED_DATA / "binance_BTC-USDT_1h.csv",
        "--report",
        "bt.html",
        cwd=work,
    )
    assert code == 0, err
    assert "html report written to bt.html" in flat(out)
    text = (work / "bt.html").read_text(encoding="utf-8")
    assert '"name":"close"' in text  # the --data candles drawn under the trades
    assert "10,000 simulations, method trades, seed 0" in text


def test_the_result_file_names_its_candles_and_report_draws_them_without_being_told(
    work: Path, results: dict[str, Path]
):
    [data] = load(results["btc"])["data"]
    assert data["symbol"] == "BTC/USDT" and data["source"] == str((SHARED_DATA / "binance_BTC-USDT_1h.csv").resolve())
    assert data["rows"] > 1000 and data["start"] < data["end"]
    code, _, err = tf("report", results["btc"], "--format", "html", "-o", "drawn.html", "--monte-carlo", "0", cwd=work)
    assert code == 0, err
    assert '"name":"close"' in (work / "drawn.html").read_text(encoding="utf-8")


def test_backtest_report_with_an_unknown_extension_fails_before_running(work: Path, results: dict[str, Path]):
    code, out, err = tf("backtest", "--config", "bot.yaml", "--report", "out.txt", cwd=work)
    assert code == 2 and "--report" in err and "total return" not in out


# --------------------------------------------------------------------------- a bot's database

PAPER_BOT = """\
name: paper-bot
mode: paper
data_dir: {root}/user_data
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: max, end: 2023-03-01}}
strategy:
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  exits: {{stop_loss: {{pct: 0.02}}}}
  sizing: {{name: percent_equity, pct: 90}}
"""


def test_analyze_config_reads_the_bots_trades_and_equity_from_its_database(tmp_path: Path):
    config = tmp_path / "bot.yaml"
    config.write_text(PAPER_BOT.format(root=tmp_path))
    assert tf("db", "upgrade", "--config", config, cwd=tmp_path)[0] == 0
    code, _, err = tf("run", "--config", config, cwd=tmp_path)
    assert code == 0, err
    code, out, err = tf("analyze", "--config", config, "--json", "bot.json", cwd=tmp_path)
    assert code == 0, err
    assert "paper-bot" in out
    code, _, err = tf("backtest", "--config", config, "--json", "backtest.json", cwd=tmp_path)
    assert code == 0, err
    analysed, backtest = load(tmp_path / "bot.json"), load(tmp_path / "backtest.json")
    # Paper fills on replayed candles are the backtest's fills, so the records agree.
    assert analysed["metrics"]["n_trades"] == backtest["metrics"]["n_trades"] > 0
    assert analysed["metrics"]["win_rate"] == pytest.approx(backtest["metrics"]["win_rate"])
    assert analysed["metrics"]["profit_factor"] == pytest.approx(backtest["metrics"]["profit_factor"])
    assert analysed["final_value"] == pytest.approx(backtest["final_value"])
    assert analysed["n_bars"] == len(backtest["equity"])
    assert analysed["metrics"]["max_drawdown"] == pytest.approx(backtest["metrics"]["max_drawdown"])
