"""Each report format opens and has the expected parts, on a real BTC hourly backtest: the HTML is
self-contained with every chart, the workbook has its sheets, formats and frozen headers, the PDF
has its pages and searchable text, the JSON follows the documented schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradeforge.analytics import metrics as m
from tradeforge.analytics.analysis import Analysis, MonteCarloSpec, analyze
from tradeforge.analytics.loaders import from_result_document
from tradeforge.analytics.reports import load_prices, write_report
from tradeforge.analytics.reports.data import format_metric, label
from tradeforge.analytics.reports.html import CHART_IDS
from tradeforge.config.catalog import write_template
from tradeforge.config.loader import load_config
from tradeforge.engine.backtest import BacktestOverrides, run_backtest

bs4 = pytest.importorskip("bs4")
openpyxl = pytest.importorskip("openpyxl")
pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def btc_file(shared_data: Path) -> Path:
    return shared_data / "binance_BTC-USDT_1h.csv"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory, btc_file: Path) -> Analysis:
    work = tmp_path_factory.mktemp("reports")
    write_template("sma_cross", work / "bot.yaml", True)
    result = run_backtest(load_config([work / "bot.yaml"]), BacktestOverrides(data=str(btc_file)))
    document = json.loads(json.dumps(result.to_json()))  # exactly what a result file holds
    perf = from_result_document(document, work / "btc.json")
    return analyze(perf, monte_carlo=MonteCarloSpec(2_000, "trades", seed=4))


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, analysis: Analysis, btc_file: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("out")
    prices = load_prices(btc_file)
    paths = {}
    for fmt in ("html", "pdf", "xlsx", "json"):
        paths[fmt] = out / f"report.{fmt}"
        write_report(analysis, paths[fmt], fmt, prices)
    return paths


def test_html_report_is_self_contained_with_every_chart_and_the_metrics(reports: dict[str, Path], analysis: Analysis):
    text = reports["html"].read_text(encoding="utf-8")
    soup = bs4.BeautifulSoup(text, "html.parser")
    scripts = soup.find_all("script")
    assert not [s for s in scripts if s.get("src")], "no script may load from elsewhere"
    assert not soup.find_all("link", href=True)
    assert any("plotly.js" in (s.string or "")[:2000] for s in scripts), "plotly.js is embedded"
    for chart in CHART_IDS:
        assert soup.find("div", id=chart) is not None, chart
        assert f'"{chart}"' in text  # its Plotly.newPlot call
    rows = soup.find("table", id="metrics").find_all("tr")
    assert len(rows) == len(m.METRIC_NAMES)
    sharpe_cell = soup.find("td", attrs={"data-metric": "sharpe"})
    assert sharpe_cell.get_text() == format_metric("sharpe", analysis.metrics["sharpe"])
    assert soup.find("table", id="monte-carlo-summary") is not None
    assert "2,000 simulations" in soup.get_text()


def test_xlsx_report_has_its_sheets_number_formats_and_frozen_headers(reports: dict[str, Path], analysis: Analysis):
    wb = openpyxl.load_workbook(reports["xlsx"])
    assert wb.sheetnames == ["Summary", "Trades", "Equity", "Monthly", "MonteCarlo"]
    assert [wb[name].freeze_panes for name in wb.sheetnames] == ["A2", "A2", "A2", "B2", "A2"]
    summary = {row[0].value: row[1] for row in wb["Summary"].iter_rows(min_row=2)}
    for key in m.METRIC_NAMES:
        assert label(key) in summary, key
    assert summary["total return"].number_format == "0.00%"
    assert summary["total return"].value == pytest.approx(analysis.metrics["total_return"])
    trades = wb["Trades"]
    perf = analysis.performance
    assert trades.max_row == len(perf.trades) + 1
    header = [c.value for c in trades[1]]
    pnl_col = header.index("pnl") + 1
    assert trades.cell(row=2, column=pnl_col).value == pytest.approx(perf.trades[0]["pnl"])
    assert trades.cell(row=2, column=pnl_col).number_format == "#,##0.00"
    equity = wb["Equity"]
    assert perf.values is not None
    assert equity.max_row == perf.values.size + 1
    assert equity.cell(row=2, column=2).value == pytest.approx(perf.values[0])
    assert equity.cell(row=2, column=1).number_format == "yyyy-mm-dd hh:mm"
    monthly = wb["Monthly"]
    assert [c.value for c in monthly[1]][:3] == ["year", "Jan", "Feb"]
    assert monthly.max_row == len({r["year"] for r in analysis.monthly}) + 1
    mc = {row[0].value: [c.value for c in row[1:]] for row in wb["MonteCarlo"].iter_rows(min_row=2) if row[0].value}
    assert analysis.monte_carlo is not None
    assert mc["final equity"][2] == pytest.approx(analysis.monte_carlo.summary()["final_equity"]["p50"])
    assert mc["simulations"][0] == 2_000


def test_pdf_report_has_four_pages_of_searchable_text(reports: dict[str, Path], analysis: Analysis):
    reader = pypdf.PdfReader(reports["pdf"])
    assert len(reader.pages) == 4
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]
    assert "tradeforge report" in pages[0]
    for key in ("sharpe", "max drawdown", "var 95 historical", "deflated sharpe ratio"):
        assert key in pages[0], key
    assert format_metric("sharpe", analysis.metrics["sharpe"]) in pages[0]
    assert "Equity and drawdown" in pages[1]
    assert "Monthly returns" in pages[2] and "trade pnl" in pages[2]
    assert "Monte Carlo fan" in pages[3] and "probability of ruin" in pages[3]


def test_json_report_follows_the_documented_schema(reports: dict[str, Path], analysis: Analysis):
    doc = json.loads(reports["json"].read_text())
    assert doc["schema"] == "tradeforge.analysis/1"
    assert tuple(doc["metrics"]) == m.METRIC_NAMES
    assert doc == json.loads(json.dumps(analysis.to_json()))
    mc = doc["monte_carlo"]
    assert set(mc) >= {"final_equity", "cagr", "max_drawdown", "probability_of_ruin", "probability_of_profit"}
    assert list(mc["final_equity"]) == ["p5", "p25", "p50", "p75", "p95"]
    assert all({"year", "month", "return"} == set(row) for row in doc["monthly_returns"])


@pytest.mark.parametrize("points", [1, 3])
def test_a_record_without_trades_still_gives_every_format(tmp_path: Path, points: int):
    """A strategy that never traded (flat equity): charts are empty, Monte Carlo is left out, nothing crashes."""
    document = {
        "start_value": 1000.0,
        "trades": [],
        "equity": [[f"2024-01-0{i + 1}T00:00:00+00:00", 1000.0] for i in range(points)],
    }
    analysis = analyze(from_result_document(document, tmp_path / "flat.json"))
    assert analysis.metrics["n_trades"] == 0 and analysis.metrics["sharpe"] is None
    for fmt in ("html", "pdf", "xlsx", "json"):
        write_report(analysis, tmp_path / f"flat.{fmt}", fmt)
        assert (tmp_path / f"flat.{fmt}").stat().st_size > 0
    assert len(pypdf.PdfReader(tmp_path / "flat.pdf").pages) == 4
    assert "No Monte Carlo simulation" in (tmp_path / "flat.html").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "flat.json").read_text())["monte_carlo"] is None
