"""One self-contained HTML file: plotly.js is embedded once, so the report works offline."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tradeforge.analytics.montecarlo import PERCENTILES
from tradeforge.analytics.reports.data import MONTHS, ReportData, trade_points

CHART_IDS = ("equity-chart", "monthly-heatmap", "pnl-distribution", "trades-chart", "monte-carlo-fan")
_CONFIG = {"displaylogo": False, "responsive": True}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .subtitle { color: #666; margin-top: 0; }
table.metrics { border-collapse: collapse; font-size: 0.9em; columns: 2; }
table.metrics td { padding: 2px 12px; border-bottom: 1px solid #eee; }
table.metrics td.value { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 2em; }
.note { color: #666; font-size: 0.9em; }
"""


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)


def equity_figure(data: ReportData) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    if data.times is not None and data.equity is not None and data.drawdown is not None:
        fig.add_trace(go.Scatter(x=data.times, y=data.equity, name="equity", line={"width": 1.2}), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=data.times, y=data.drawdown * 100, name="drawdown %", fill="tozeroy", line={"width": 0.8}),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_layout(height=520, margin={"t": 30, "b": 30}, showlegend=False)
    return fig


def monthly_figure(data: ReportData) -> go.Figure:
    z = data.monthly * 100
    text = [["" if np.isnan(v) else f"{v:.1f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(MONTHS),
            y=[str(y) for y in data.monthly_years],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmid=0,
            colorbar={"title": "%"},
            hovertemplate="%{y} %{x}: %{z:.2f} %<extra></extra>",
        )
    )
    fig.update_layout(height=max(220, 40 * len(data.monthly_years) + 100), margin={"t": 30, "b": 30})
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def pnl_figure(data: ReportData) -> go.Figure:
    pnl = data.trade_pnl
    fig = go.Figure()
    bins = None
    if pnl.size:
        edges = np.histogram_bin_edges(pnl, bins=min(50, max(5, pnl.size // 3)))
        bins = {"start": float(edges[0]), "end": float(edges[-1]), "size": float(edges[1] - edges[0]) or 1.0}
    for name, part, colour in (("wins", pnl[pnl > 0], "#2ca02c"), ("losses", pnl[pnl <= 0], "#d62728")):
        fig.add_trace(go.Histogram(x=part, name=name, marker_color=colour, opacity=0.8, xbins=bins))
    fig.update_layout(barmode="overlay", height=320, margin={"t": 30, "b": 30}, xaxis_title="trade pnl")
    return fig


def trades_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    if data.prices is not None:
        fig.add_trace(go.Scatter(x=data.prices.times, y=data.prices.close, name="close", line={"width": 1}))
    styles = {"long": ("triangle-up", "#2ca02c"), "short": ("triangle-down", "#d62728")}
    for side, points in trade_points(data).items():
        symbol, colour = styles.get(side, ("circle", "#1f77b4"))
        fig.add_trace(
            go.Scatter(
                x=points["entry_t"],
                y=points["entry_p"],
                mode="markers",
                name=f"{side} entry",
                marker={"symbol": symbol, "color": colour, "size": 8},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=points["exit_t"],
                y=points["exit_p"],
                mode="markers",
                name=f"{side} exit",
                marker={"symbol": "x", "color": "#444", "size": 7},
                text=[f"pnl {p:,.2f}" for p in points["pnl"]],
            )
        )
    fig.update_layout(height=420, margin={"t": 30, "b": 30}, yaxis_title="price")
    return fig


def fan_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    if data.fan is not None and data.fan_x is not None:
        x = data.fan_x
        bands = dict(zip(PERCENTILES, data.fan, strict=True))
        for low, high, alpha in ((5, 95, 0.15), (25, 75, 0.3)):
            fig.add_trace(go.Scatter(x=x, y=bands[high], line={"width": 0}, showlegend=False, hoverinfo="skip"))
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=bands[low],
                    fill="tonexty",
                    fillcolor=f"rgba(31,119,180,{alpha})",
                    line={"width": 0},
                    name=f"p{low}-p{high}",
                )
            )
        fig.add_trace(go.Scatter(x=x, y=bands[50], name="median", line={"color": "#1f77b4"}))
    fig.update_layout(height=380, margin={"t": 30, "b": 30}, xaxis_title="step", yaxis_title="equity")
    return fig


def _metrics_table(data: ReportData) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(lbl)}</td><td class="value" data-metric="{key}">{html.escape(val)}</td></tr>'
        for key, lbl, val in data.metrics
    )
    return f'<table class="metrics" id="metrics">{rows}</table>'


def _mc_table(data: ReportData) -> str:
    mc = data.mc
    if mc is None:
        return '<p class="note">No Monte Carlo simulation (no closed trades, or not requested).</p>'
    head = "".join(f"<th>p{p}</th>" for p in PERCENTILES)
    body = ""
    for key, name, pct in (
        ("final_equity", "final equity", False),
        ("cagr", "CAGR", True),
        ("max_drawdown", "max drawdown", True),
    ):
        row = mc[key] or {}
        cells = "".join(
            "<td>n/a</td>"
            if row.get(f"p{p}") is None
            else f"<td>{row[f'p{p}'] * (100 if pct else 1):,.2f}{' %' if pct else ''}</td>"
            for p in PERCENTILES
        )
        body += f"<tr><td>{name}</td>{cells}</tr>"
    return (
        f'<table class="metrics" id="monte-carlo-summary"><tr><th></th>{head}</tr>{body}</table>'
        f'<p class="note">{mc["simulations"]:,} simulations, method {mc["method"]}, seed {mc["seed"]}; '
        f"probability of profit {mc['probability_of_profit'] * 100:.1f} %, probability of ruin "
        f"(equity at or below {mc['ruin_level'] * 100:g} % of the start) {mc['probability_of_ruin'] * 100:.1f} %.</p>"
    )


def render_html(data: ReportData) -> str:
    trades_note = (
        ""
        if data.prices is not None
        else '<p class="note">Fill prices only (pass --prices CANDLES.csv to draw the candles).</p>'
    )
    sections = [
        ("Metrics", _metrics_table(data)),
        ("Equity and drawdown", _div(equity_figure(data), CHART_IDS[0])),
        ("Monthly returns (%)", _div(monthly_figure(data), CHART_IDS[1])),
        ("Trade PnL distribution", _div(pnl_figure(data), CHART_IDS[2])),
        ("Trades", trades_note + _div(trades_figure(data), CHART_IDS[3])),
        ("Monte Carlo", _mc_table(data) + _div(fan_figure(data), CHART_IDS[4])),
    ]
    body = "".join(f"<section><h2>{html.escape(title)}</h2>{content}</section>" for title, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data.title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><h1>{html.escape(data.title)}</h1>"
        f'<p class="subtitle">{html.escape(data.subtitle)}</p>{body}</body></html>\n'
    )


def write_html(data: ReportData, path: Path) -> None:
    path.write_text(render_html(data), encoding="utf-8")
