"""Reports of one analysed record: HTML (interactive, self-contained), PDF, Excel and JSON."""

from __future__ import annotations

from pathlib import Path

from tradeforge.analytics.analysis import Analysis
from tradeforge.analytics.reports.data import Prices, load_prices, report_data

__all__ = ["FORMATS", "Prices", "load_prices", "write_report"]

FORMATS = ("html", "pdf", "xlsx", "json")


def write_report(analysis: Analysis, path: Path, fmt: str, prices: Prices | None = None) -> None:
    """Write ``analysis`` to ``path`` in ``fmt``; heavy libraries load only for the chosen format."""
    if fmt not in FORMATS:
        raise ValueError(f"report format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        from tradeforge.analytics.reports.json_report import write_json_report

        write_json_report(analysis, path)
        return
    data = report_data(analysis, prices)
    if fmt == "html":
        from tradeforge.analytics.reports.html import write_html

        write_html(data, path)
    elif fmt == "pdf":
        from tradeforge.analytics.reports.pdf import write_pdf

        write_pdf(data, path)
    else:
        from tradeforge.analytics.reports.xlsx import write_xlsx

        write_xlsx(data, path)
