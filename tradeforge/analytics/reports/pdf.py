"""Printable PDF with the HTML report's content as static matplotlib charts (A4 pages).

Uses matplotlib's object API (no pyplot): no global figure state, safe in a long-running process.
Fonts are embedded as TrueType (``pdf.fonttype: 42``) so the text can be searched and extracted.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from tradeforge.analytics.montecarlo import PERCENTILES
from tradeforge.analytics.reports.data import MONTHS, ReportData, trade_points

A4 = (8.27, 11.69)


def _page(title: str) -> Figure:
    fig = Figure(figsize=A4)
    fig.suptitle(title, fontsize=13, x=0.06, ha="left")
    return fig


def _metrics_page(data: ReportData) -> Figure:
    fig = _page(data.title)
    fig.text(0.06, 0.94, "\n".join(textwrap.wrap(data.subtitle, 110)), fontsize=8, color="#555", va="top")
    half = (len(data.metrics) + 1) // 2
    for col, rows in enumerate((data.metrics[:half], data.metrics[half:])):
        ax = fig.add_axes((0.04 + col * 0.48, 0.05, 0.44, 0.84))
        ax.axis("off")
        table = ax.table(cellText=[[lbl, val] for _, lbl, val in rows], colWidths=[0.62, 0.38], loc="upper left")
        table.auto_set_font_size(False)
        table.set_fontsize(7.5)
        table.scale(1, 1.25)
    return fig


def _equity_page(data: ReportData) -> Figure:
    fig = _page("Equity and drawdown")
    top = fig.add_axes((0.1, 0.45, 0.85, 0.45))
    bottom = fig.add_axes((0.1, 0.1, 0.85, 0.3), sharex=top)
    if data.times is not None and data.equity is not None and data.drawdown is not None:
        x = data.times.tz_convert("UTC").tz_localize(None).to_numpy()
        top.plot(x, data.equity, lw=0.8)
        bottom.fill_between(x, data.drawdown * 100, 0, color="#d62728", alpha=0.5, lw=0)
    top.set_ylabel("equity")
    bottom.set_ylabel("drawdown %")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    return fig


def _returns_page(data: ReportData) -> Figure:
    fig = _page("Monthly returns (%) and trade PnL distribution")
    heat = fig.add_axes((0.1, 0.5, 0.85, 0.4))
    if data.monthly_years:
        z = data.monthly * 100
        limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        heat.imshow(z, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), value in np.ndenumerate(z):
            if np.isfinite(value):
                heat.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=6)
        heat.set_yticks(range(len(data.monthly_years)), [str(y) for y in data.monthly_years], fontsize=7)
    heat.set_xticks(range(12), list(MONTHS), fontsize=7)
    hist = fig.add_axes((0.1, 0.08, 0.85, 0.33))
    pnl = data.trade_pnl
    if pnl.size:
        bins = np.histogram_bin_edges(pnl, bins=min(50, max(5, pnl.size // 3))).tolist()
        hist.hist(pnl[pnl > 0], bins=bins, color="#2ca02c", alpha=0.8, label="wins")
        hist.hist(pnl[pnl <= 0], bins=bins, color="#d62728", alpha=0.8, label="losses")
        hist.legend(fontsize=7)
    hist.set_xlabel("trade pnl")
    hist.set_ylabel("trades")
    return fig


def _trades_page(data: ReportData) -> Figure:
    fig = _page("Trades and Monte Carlo")
    ax = fig.add_axes((0.1, 0.56, 0.85, 0.34))
    ax.set_title("Trades" + ("" if data.prices is not None else " (fill prices)"), fontsize=9, loc="left")
    if data.prices is not None:
        ax.plot(data.prices.times.tz_convert("UTC").tz_localize(None).to_numpy(), data.prices.close, lw=0.6)
    for side, points in trade_points(data).items():
        marker, colour = ("^", "#2ca02c") if side == "long" else ("v", "#d62728")
        ax.scatter(
            [t.tz_localize(None) for t in points["entry_t"]], points["entry_p"], marker=marker, c=colour, s=12, zorder=3
        )
        exits = [(t, p) for t, p in zip(points["exit_t"], points["exit_p"], strict=True) if t is not None]
        if exits:
            ax.scatter(
                [t.tz_localize(None) for t, _ in exits], [p for _, p in exits], marker="x", c="#444", s=10, zorder=3
            )
    ax.grid(alpha=0.3)
    fan = fig.add_axes((0.1, 0.2, 0.85, 0.28))
    mc = data.mc
    if mc is not None and data.fan is not None and data.fan_x is not None:
        bands = dict(zip(PERCENTILES, data.fan, strict=True))
        fan.fill_between(data.fan_x, bands[5], bands[95], alpha=0.2, lw=0, label="p5-p95")
        fan.fill_between(data.fan_x, bands[25], bands[75], alpha=0.35, lw=0, label="p25-p75")
        fan.plot(data.fan_x, bands[50], lw=1, label="median")
        fan.legend(fontsize=7)
        fan.set_title(
            f"Monte Carlo fan: {mc['simulations']:,} simulations, method {mc['method']}, seed {mc['seed']}",
            fontsize=9,
            loc="left",
        )
        fe, dd = mc["final_equity"], mc["max_drawdown"]
        lines = [
            "final equity " + "  ".join(f"p{p} {fe[f'p{p}']:,.0f}" for p in PERCENTILES),
            "max drawdown " + "  ".join(f"p{p} {dd[f'p{p}'] * 100:.1f} %" for p in PERCENTILES),
            f"probability of profit {mc['probability_of_profit'] * 100:.1f} %, probability of ruin "
            f"{mc['probability_of_ruin'] * 100:.1f} % (equity at or below {mc['ruin_level'] * 100:g} % of the start)",
        ]
        for i, line in enumerate(lines):
            fig.text(0.1, 0.12 - i * 0.02, line, fontsize=7.5)
    else:
        fan.set_title("Monte Carlo: not run (no closed trades, or not requested)", fontsize=9, loc="left")
    fan.set_xlabel("step")
    fan.set_ylabel("equity")
    return fig


def write_pdf(data: ReportData, path: Path) -> None:
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        info = pdf.infodict()
        info["Title"] = data.title
        info["Creator"] = "tradeforge"
        for make in (_metrics_page, _equity_page, _returns_page, _trades_page):
            pdf.savefig(make(data))
