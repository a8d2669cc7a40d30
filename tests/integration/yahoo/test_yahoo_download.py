"""`download-data --source yahoo` on recorded chart-API answers: candles stamped in UTC, adjustment modes,
missing values, time zones, incremental runs, Yahoo's limits and errors; a failure writes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from fakes.yahoo import CRUMB, Fault

from tradeforge.feeds.candles import read_candles, to_ns
from tradeforge.feeds.store import CandleStore
from tradeforge.feeds.yahoo import YahooClient, download
from tradeforge.resilience.errors import ConfigError, DataError, Temporary

SINCE = dt.datetime(2014, 1, 1, tzinfo=dt.UTC)
SHARED_ORCL = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "yahoo_ORCL_1d.csv"


def day(text: str) -> int:
    return to_ns(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC))


def run(client: YahooClient, store: CandleStore, clock, symbols: list[str], timeframe: str = "1d", **kw):
    kw.setdefault("since", SINCE)
    return download(client, store, symbols, timeframe, now=clock, **kw)


def test_daily_candles_are_labelled_by_trading_date_and_split_adjusted_as_yahoo_serves_them(client, clock, store_dir):
    store = CandleStore(store_dir)
    [report] = run(client, store, clock, ["ORCL"])
    candles = store.load("yahoo", "ORCL", "1d")
    assert report.added == 251 == len(candles)  # 252 trading days, one served without a close
    assert report.dropped == 1
    assert candles.start == dt.datetime(2014, 1, 2, tzinfo=dt.UTC)  # 09:30 New York -> the date, 00:00 UTC
    assert np.all(candles.timestamp % (86_400 * 10**9) == 0)
    # Before the 2:1 split Yahoo's prices are halved; after it they are as traded.
    first = int(np.searchsorted(candles.timestamp, day("2014-01-02")))
    assert candles.close[first] == pytest.approx(37.84 / 2)
    on_split_day = int(np.searchsorted(candles.timestamp, day("2014-09-02")))
    assert candles.close[on_split_day - 1] < 25 < candles.close[on_split_day] == pytest.approx(41.66)
    assert candles.close[-1] == pytest.approx(44.97)
    assert report.splits == [(dt.datetime(2014, 9, 2, tzinfo=dt.UTC), 2.0)]


def test_adjust_none_undoes_the_split_and_gives_prices_as_traded(client, clock, store_dir):
    if not SHARED_ORCL.is_file():
        pytest.skip(f"shared data not present at {SHARED_ORCL}")
    run(client, CandleStore(store_dir), clock, ["ORCL"], adjust="none")
    raw = CandleStore(store_dir).load("yahoo-none", "ORCL", "1d")
    traded = read_candles(SHARED_ORCL, "ORCL", "1d").between(SINCE, dt.datetime(2014, 12, 31, tzinfo=dt.UTC))
    common, ours, theirs = np.intersect1d(raw.timestamp, traded.timestamp, return_indices=True)
    assert len(common) == 251
    assert np.allclose(raw.close[ours], traded.close[theirs], rtol=1e-6)
    served = raw.volume[ours] > 0  # one candle came without volume
    assert np.allclose(raw.volume[ours][served], traded.volume[theirs][served], rtol=1e-6)


def test_adjust_all_scales_prices_by_adjclose_over_close(client, clock, store_dir):
    run(client, CandleStore(store_dir), clock, ["ORCL"], adjust="all")
    run(client, CandleStore(store_dir), clock, ["ORCL"], adjust="splits")
    total = CandleStore(store_dir).load("yahoo-all", "ORCL", "1d")
    splits = CandleStore(store_dir).load("yahoo", "ORCL", "1d")
    factor = total.close / splits.close
    assert np.allclose(total.open / splits.open, factor) and np.allclose(total.low / splits.low, factor)
    assert factor[0] < factor[-1] == pytest.approx(1.0)  # dividends lower older prices only
    assert np.all(np.diff(factor) >= -1e-6)  # adjclose comes rounded
    assert np.array_equal(total.volume, splits.volume)


def test_missing_values_are_dropped_or_zero_filled_never_stored_as_nan(client, clock, store_dir):
    [report] = run(client, CandleStore(store_dir), clock, ["ORCL"])
    candles = CandleStore(store_dir).load("yahoo", "ORCL", "1d")
    assert report.dropped == 1  # the candle without a close; the all-null placeholder is not a candle
    assert not any(np.isnan(getattr(candles, c)).any() for c in ("open", "high", "low", "close", "volume"))
    assert (candles.volume == 0).sum() == 1  # Yahoo served one candle without volume


@pytest.mark.parametrize(
    ("symbol", "first"),
    [
        ("7203.T", "2014-03-03"),  # Tokyo stamps 00:00 JST, i.e. 15:00 UTC the day before
        ("PETR4.SA", "2014-03-03"),
    ],
)
def test_daily_candles_east_and_south_of_utc_keep_their_local_trading_date(client, clock, store_dir, symbol, first):
    run(client, CandleStore(store_dir), clock, [symbol])
    candles = CandleStore(store_dir).load("yahoo", symbol, "1d")
    assert candles.start == dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
    assert len(candles) == 10 and len(np.unique(candles.timestamp)) == 10
    dates = [dt.datetime.fromtimestamp(t / 1e9, dt.UTC).weekday() for t in candles.timestamp]
    assert max(dates) <= 4  # every label is a weekday: no candle slipped to the evening before


def test_intraday_candles_keep_their_utc_open_time_and_skip_the_candle_in_progress(yahoo, client, clock, store_dir):
    clock.now = dt.datetime(2024, 7, 9, 17, 45, 30, tzinfo=dt.UTC)  # 13:45:30 New York, a session in progress
    [report] = run(client, CandleStore(store_dir), clock, ["SPY"], "1h", since=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    candles = CandleStore(store_dir).load("yahoo", "SPY", "1h")
    assert candles.start == dt.datetime(2024, 7, 1, 13, 30, tzinfo=dt.UTC)  # 09:30 EDT
    # 9 July: 09:30..12:30 closed, 13:30 still open; the off-grid 'latest trade' row is no candle.
    assert candles.end == dt.datetime(2024, 7, 9, 16, 30, tzinfo=dt.UTC)
    assert report.added == 7 + 7 + 4 + 7 + 7 + 4 == len(candles)
    assert dt.datetime(2024, 7, 3, 16, 30, tzinfo=dt.UTC) in [c for c in _times(candles)]  # early close: 12:30-13:00


def test_fx_candles_around_the_clock_on_weekdays(client, clock, store_dir):
    clock.now = dt.datetime(2022, 3, 12, 12, tzinfo=dt.UTC)
    since = dt.datetime(2022, 3, 4, tzinfo=dt.UTC)
    run(client, CandleStore(store_dir), clock, ["EURUSD=X"], "1h", since=since)
    candles = CandleStore(store_dir).load("yahoo", "EURUSD=X", "1h")
    assert len(candles) == 24 * 5 and candles.volume.max() == 0  # Friday, then Monday to Thursday
    assert all(t.weekday() < 5 for t in _times(candles))


def test_one_minute_candles_are_fetched_seven_days_per_request(yahoo, client, clock, store_dir):
    clock.now = dt.datetime(2024, 7, 4, tzinfo=dt.UTC)
    [report] = run(client, CandleStore(store_dir), clock, ["MSFT"], "1m", since=dt.datetime(2024, 6, 10, tzinfo=dt.UTC))
    assert report.added == 120 and report.requests == 4
    for call in yahoo.chart_calls("MSFT"):
        assert int(call["period2"]) - int(call["period1"]) <= 7 * 86_400


def test_beyond_yahoos_history_limit_is_refused_naming_the_setting_and_the_limit(yahoo, client, clock, store_dir):
    clock.now = dt.datetime(2024, 7, 3, tzinfo=dt.UTC)
    with pytest.raises(ConfigError) as caught:
        run(client, CandleStore(store_dir), clock, ["MSFT"], "1m", since=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    message = str(caught.value)
    assert "--since" in message and "last 30 days" in message and "2024-06-03" in message
    with pytest.raises(ConfigError, match="--timeframe"):
        run(client, CandleStore(store_dir), clock, ["MSFT"], "4h")
    with pytest.raises(ConfigError, match="--adjust"):
        run(
            client,
            CandleStore(store_dir),
            clock,
            ["SPY"],
            "1h",
            since=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
            adjust="all",
        )
    assert yahoo.chart_calls() == [] and not store_dir.exists()


def test_an_unknown_symbol_is_named_and_nothing_is_stored(yahoo, client, clock, store_dir):
    with pytest.raises(ConfigError) as caught:
        run(client, CandleStore(store_dir), clock, ["ORCL", "NOPE", "7203.T"])
    assert "NOPE" in str(caught.value) and "symbol may be delisted" in str(caught.value)
    assert "ORCL" not in str(caught.value).split("NOPE")[0].split("\n", 1)[1]
    assert not store_dir.exists()  # ORCL was fetched fine, but nothing is half-done


def test_cookie_and_crumb_are_fetched_first_and_the_crumb_rides_on_chart_requests(yahoo, client, clock, store_dir):
    run(client, CandleStore(store_dir), clock, ["ORCL"])
    paths = [f"{host}{path}" for host, path, _ in yahoo.calls]
    assert paths[0] == "fc.yahoo.com/"
    assert paths.index("query1.finance.yahoo.com/v1/test/getcrumb") < paths.index(
        "query2.finance.yahoo.com/v8/finance/chart/ORCL"
    )
    assert [q["crumb"] for q in yahoo.chart_calls()] == [CRUMB]


@pytest.mark.parametrize("fault", [Fault.rate_limited(retry_after=0), Fault.server_error(503), Fault.unreachable()])
def test_rate_limits_outages_and_dropped_connections_are_retried(yahoo, client, clock, store_dir, fault):
    # yfinance itself re-asks once after a 4xx/5xx (with its other cookie strategy), so inject two answers.
    yahoo.inject("/v8/finance/chart/", fault, times=2)
    [report] = run(client, CandleStore(store_dir), clock, ["ORCL"])
    assert report.added == 251


def test_when_retries_run_out_the_error_is_clear_and_the_store_untouched(yahoo, client, clock, store_dir):
    store = CandleStore(store_dir)
    run(client, store, clock, ["7203.T"])
    before = store.path_for("yahoo", "7203.T", "1d").read_bytes()
    yahoo.inject("/v8/finance/chart/", Fault.rate_limited(), times=20)
    with pytest.raises(Temporary, match="rate limited"):
        run(client, store, clock, ["7203.T", "ORCL"], since=dt.datetime(2013, 1, 1, tzinfo=dt.UTC))
    assert store.path_for("yahoo", "7203.T", "1d").read_bytes() == before
    assert not store.exists("yahoo", "ORCL", "1d")


def test_with_no_network_at_all_the_download_fails_clearly(yahoo, client, clock, store_dir):
    yahoo.offline = True
    with pytest.raises(Temporary, match="cannot reach Yahoo Finance"):
        run(client, CandleStore(store_dir), clock, ["ORCL"])
    assert not store_dir.exists()


def test_a_refused_request_is_a_clear_error_with_yahoos_reason(yahoo, client, clock, store_dir):
    yahoo.inject(
        "/v8/finance/chart/",
        Fault(
            400,
            '{"chart":{"result":null,"error":{"code":"Bad Request",'
            '"description":"Invalid input - interval=1d is not supported"}}}',
        ),
        times=2,
    )
    with pytest.raises(DataError, match="Invalid input"):
        run(client, CandleStore(store_dir), clock, ["ORCL"])


def test_a_second_run_fetches_only_what_is_new(yahoo, client, clock, store_dir):
    store = CandleStore(store_dir)
    since = dt.datetime(2014, 3, 1, tzinfo=dt.UTC)
    clock.now = dt.datetime(2014, 3, 12, 12, tzinfo=dt.UTC)  # 7203.T has candles up to 14 March
    [first] = run(client, store, clock, ["7203.T"], since=since)
    assert first.added == 7
    clock.now = dt.datetime(2014, 6, 2, 12, tzinfo=dt.UTC)
    [again] = run(client, store, clock, ["7203.T"], since=since)
    assert again.added == 3 and again.rows == 10
    last_call = yahoo.chart_calls("7203.T")[-1]
    # From the day after the last stored one, less a day: Tokyo's 12 March is stamped 11 March 15:00 UTC.
    assert int(last_call["period1"]) == to_ns(dt.datetime(2014, 3, 11, tzinfo=dt.UTC)) // 10**9
    [nothing_new] = run(client, store, clock, ["7203.T"], since=since)
    assert nothing_new.added == 0


def test_a_split_after_the_stored_candles_re_adjusts_the_stored_history(yahoo, client, clock, store_dir):
    store = CandleStore(store_dir)
    yahoo.as_of["ORCL"] = "before_split"
    clock.now = dt.datetime(2014, 8, 30, 12, tzinfo=dt.UTC)
    [before] = run(client, store, clock, ["ORCL"])
    assert store.load("yahoo", "ORCL", "1d").close[0] == pytest.approx(37.84)  # no split yet: as traded
    yahoo.as_of.clear()
    clock.now = dt.datetime(2015, 1, 5, 12, tzinfo=dt.UTC)
    [report] = run(client, store, clock, ["ORCL"])
    candles = store.load("yahoo", "ORCL", "1d")
    assert report.refetched and report.added == 251 - before.rows
    assert candles.close[0] == pytest.approx(37.84 / 2)  # the old candles now on the post-split basis
    assert len(candles) == 251


def _times(candles) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t / 1e9, dt.UTC) for t in candles.timestamp]


def test_running_again_at_once_asks_once_and_adds_nothing(yahoo, client, clock, store_dir):
    clock.now = dt.datetime(2024, 7, 9, 17, 45, 30, tzinfo=dt.UTC)
    since = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
    store = CandleStore(store_dir)
    run(client, store, clock, ["SPY"], "1h", since=since)
    [again] = run(client, store, clock, ["SPY"], "1h", since=since)
    assert again.added == 0 and again.requests == 1 and again.rows == 36


def test_a_backtest_of_a_yahoo_config_reads_the_folder_of_its_adjustment(client, clock, store_dir):
    from tradeforge.config.schema import BotConfig
    from tradeforge.engine.data import load_candles

    run(client, CandleStore(store_dir), clock, ["ORCL"], adjust="all")
    config = BotConfig.model_validate(
        {
            "data_dir": str(store_dir),
            "data": {"source": "yahoo", "symbols": ["ORCL"], "timeframe": "1d"},
            "yahoo": {"adjust": "all"},
            "strategy": {"preset": "sma_cross"},
        }
    )
    [candles] = load_candles(config)
    assert len(candles) == 251 and candles.close[0] < 37.84 / 2  # dividend-adjusted below the split-adjusted price
    with pytest.raises(DataError, match="download-data"):
        load_candles(config.model_copy(update={"yahoo": config.yahoo.model_copy(update={"adjust": "none"})}))


def test_yahoos_will_be_right_back_page_is_retried_and_a_plain_refusal_is_not(yahoo, client, clock, store_dir):
    yahoo.inject("/v8/finance/chart/", Fault(200, "<html>Will be right back...</html>"))
    [report] = run(client, CandleStore(store_dir), clock, ["ORCL"])
    assert report.added == 251 and report.requests == 1 and len(yahoo.chart_calls("ORCL")) == 2
    yahoo.inject("/v8/finance/chart/", Fault(403, "<html>Forbidden</html>"), times=2)
    with pytest.raises(DataError, match="HTTP 403"):
        run(client, CandleStore(store_dir), clock, ["7203.T"])
    assert len(yahoo.chart_calls("7203.T")) == 2  # yfinance's own second try, none of ours
