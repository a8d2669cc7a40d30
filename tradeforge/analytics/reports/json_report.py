"""The JSON report: the analysis document (schema `tradeforge.analysis/1`, README "JSON report schema")."""

from __future__ import annotations

import json
from pathlib import Path

from tradeforge.analytics.analysis import Analysis


def write_json_report(analysis: Analysis, path: Path) -> None:
    path.write_text(json.dumps(analysis.to_json(), indent=1, allow_nan=False), encoding="utf-8")
