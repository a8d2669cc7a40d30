"""The HTML report renders in a real headless Chromium (Debian `chromium`), offline: every chart
draws, nothing is fetched from the network, and the console shows no error.

Skipped with a reason when Chromium (or playwright) is absent, except under CI=true, where it fails:
CI must not go green without having rendered the report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tradeforge.analytics.analysis import MonteCarloSpec, analyze
from tradeforge.analytics.loaders import from_result_document
from tradeforge.analytics.reports import load_prices, write_report
from tradeforge.analytics.reports.html import CHART_IDS
from tradeforge.config.catalog import write_template
from tradeforge.config.loader import load_config
from tradeforge.engine.backtest import BacktestOverrides, run_backtest

ON_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, checked before the (slower) report is built."""
    path = os.environ.get("TRADEFORGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "Chromium not installed (Debian: apt-get install chromium)"
        if ON_CI:
            pytest.fail(reason + "; required under CI=true")
        pytest.skip(reason)
    return path


def _playwright():  # type: ignore[no-untyped-def]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if ON_CI:
            pytest.fail("playwright is not installed; required under CI=true")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    work = tmp_path_factory.mktemp("chromium")
    candles = shared_data / "yahoo_ORCL_1d.csv"
    write_template("sma_cross", work / "bot.yaml", True)
    os.environ["TRADEFORGE__DATA__TIMEFRAME"] = "1d"
    try:
        config = load_config([work / "bot.yaml"])
    finally:
        del os.environ["TRADEFORGE__DATA__TIMEFRAME"]
    result = run_backtest(config, BacktestOverrides(data=str(candles)))
    perf = from_result_document(json.loads(json.dumps(result.to_json())), work / "orcl.json")
    analysis = analyze(perf, monte_carlo=MonteCarloSpec(1_000, "trades", seed=1))
    path = work / "report.html"
    write_report(analysis, path, "html", load_prices(candles))
    return path


def test_html_report_renders_every_chart_offline_without_console_errors(chromium: str, report: Path) -> None:
    executable = chromium
    sync_playwright = _playwright()
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda msg: problems.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))

            def only_the_file(route):  # type: ignore[no-untyped-def]
                requests.append(route.request.url)
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(
                f"() => document.querySelectorAll('.js-plotly-plot').length === {len(CHART_IDS)}", timeout=60_000
            )
            drawn = page.evaluate(
                """ids => ids.map(id => {
                    const div = document.getElementById(id);
                    return [id,
                            div.querySelectorAll('.main-svg').length,
                            div.querySelectorAll('.scatterlayer .trace, .heatmaplayer .hm, .barlayer .trace').length];
                })""",
                list(CHART_IDS),
            )
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.as_uri()], "the report must not fetch anything"
    for chart_id, svgs, traces in drawn:
        assert svgs > 0, f"{chart_id} drew no SVG"
        assert traces > 0, f"{chart_id} drew no data"
