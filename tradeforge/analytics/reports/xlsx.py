"""Excel workbook: Summary, Trades, Equity, Monthly and MonteCarlo sheets, with number formats and
frozen header rows so they stay readable when scrolled."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from tradeforge.analytics.montecarlo import PERCENTILES
from tradeforge.analytics.reports.data import MONTHS, ReportData, is_percent, label

PCT = "0.00%"
MONEY = "#,##0.00"
NUMBER = "0.0000"
TIME = "yyyy-mm-dd hh:mm"
TRADE_COLUMNS = (
    ("symbol", None),
    ("side", None),
    ("entry_time", TIME),
    ("exit_time", TIME),
    ("size", "0.00000000"),
    ("entry_price", MONEY),
    ("exit_price", MONEY),
    ("pnl", MONEY),
    ("pnl_pct", PCT),
    ("fees", MONEY),
    ("exit_reason", None),
)
SHEETS = ("Summary", "Trades", "Equity", "Monthly", "MonteCarlo")


def _header(ws: Worksheet, names: list[str], freeze: str = "A2") -> None:
    ws.append(names)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = freeze
    for i, name in enumerate(names, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(12, len(name) + 2)


def _naive(moment: Any) -> Any:
    """Excel has no time zones: times are written as naive UTC (the header says so)."""
    if moment is None:
        return None
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_pydatetime()


def _cell(value: float | int | None) -> float | int | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _summary(ws: Worksheet, data: ReportData) -> None:
    _header(ws, ["metric", "value"])
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 18
    ws.append(["report", data.title])
    ws.append(["record", data.subtitle])
    for key, value in data.raw_metrics.items():
        ws.append([label(key), _cell(value) if value is not None else "n/a"])
        cell = ws.cell(row=ws.max_row, column=2)
        if isinstance(value, float):
            cell.number_format = PCT if is_percent(key) else NUMBER


def _trades(ws: Worksheet, data: ReportData) -> None:
    _header(ws, [name + (" (UTC)" if fmt == TIME else "") for name, fmt in TRADE_COLUMNS])
    for trade in data.trades:
        row = []
        for name, fmt in TRADE_COLUMNS:
            value = trade.get(name)
            row.append(_naive(value) if fmt == TIME else value)
        ws.append(row)
    for i, (_, fmt) in enumerate(TRADE_COLUMNS, start=1):
        if fmt:
            letter = get_column_letter(i)
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = fmt
            ws.column_dimensions[letter].width = 18


def _equity(ws: Worksheet, data: ReportData) -> None:
    _header(ws, ["time (UTC)", "equity", "drawdown"])
    ws.column_dimensions["A"].width = 18
    if data.times is None or data.equity is None or data.drawdown is None:
        return
    naive = data.times.tz_convert("UTC").tz_localize(None).to_pydatetime()
    for t, v, d in zip(naive, data.equity.tolist(), data.drawdown.tolist(), strict=True):
        ws.append([t, v, d])
    for row in ws.iter_rows(min_row=2):
        row[0].number_format = TIME
        row[1].number_format = MONEY
        row[2].number_format = PCT


def _monthly(ws: Worksheet, data: ReportData) -> None:
    _header(ws, ["year", *MONTHS, "year total"], freeze="B2")
    for year, row in zip(data.monthly_years, data.monthly, strict=True):
        known = row[~pd.isna(row)]
        total = float((1 + known).prod() - 1) if known.size else None
        ws.append([year, *(None if pd.isna(x) else float(x) for x in row), total])
    for row in ws.iter_rows(min_row=2, min_col=2):
        for cell in row:
            cell.number_format = PCT


def _monte_carlo(ws: Worksheet, data: ReportData) -> None:
    _header(ws, ["statistic", *(f"p{p}" for p in PERCENTILES)])
    ws.column_dimensions["A"].width = 26
    mc = data.mc
    if mc is None:
        ws.append(["no Monte Carlo simulation (no closed trades, or not requested)"])
        return
    for key, fmt in (("final_equity", MONEY), ("cagr", PCT), ("max_drawdown", PCT)):
        row = mc[key] or {}
        ws.append([label(key), *(row.get(f"p{p}") for p in PERCENTILES)])
        for cell in ws[ws.max_row][1:]:
            cell.number_format = fmt
    ws.append([])
    for key, fmt in (("probability_of_profit", PCT), ("probability_of_ruin", PCT), ("ruin_level", PCT)):
        ws.append([label(key), mc[key]])
        ws.cell(row=ws.max_row, column=2).number_format = fmt
    for key in ("simulations", "method", "seed", "steps", "block_size"):
        ws.append([label(key), mc[key]])


def write_xlsx(data: ReportData, path: Path) -> None:
    wb = Workbook()
    first = wb.active
    assert first is not None
    first.title = SHEETS[0]
    _summary(first, data)
    for name, fill in zip(SHEETS[1:], (_trades, _equity, _monthly, _monte_carlo), strict=True):
        fill(wb.create_sheet(name), data)
    wb.save(path)
