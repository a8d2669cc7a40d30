"""The README's config reference, generated from the Pydantic models and the mixin declarations so
it cannot drift (a test compares). Refresh with `python -m tradeforge.engine.reference README.md`."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tradeforge.config.schema import (
    BotConfig,
    BrokerConfig,
    DataConfig,
    DeliveryConfig,
    EmailConfig,
    ExchangeConfig,
    IbkrConfig,
    IbkrContractConfig,
    NotificationsConfig,
    OptimizeConfig,
    PersistenceConfig,
    RangeOverride,
    StrategyConfig,
    TelegramConfig,
    YahooConfig,
)
from tradeforge.strategies.registry import KIND_ORDER, Registry

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("top level", BotConfig),
    ("data", DataConfig),
    ("broker", BrokerConfig),
    ("persistence", PersistenceConfig),
    ("exchange", ExchangeConfig),
    ("yahoo", YahooConfig),
    ("ibkr", IbkrConfig),
    ("ibkr.contracts.NAME", IbkrContractConfig),
    ("strategy", StrategyConfig),
    ("notifications", NotificationsConfig),
    ("notifications.telegram", TelegramConfig),
    ("notifications.email", EmailConfig),
    ("notifications.delivery", DeliveryConfig),
    ("optimize", OptimizeConfig),
    ("optimize.space.MIXIN.PARAM", RangeOverride),
)
_KIND_KEYS = {
    "entry": "strategy.entry: {name: NAME, ...}",
    "exit": "strategy.exits.NAME",
    "sizing": "strategy.sizing: {name: NAME, ...}",
    "filter": "strategy.filters.NAME",
    "protection": "strategy.protections.NAME",
}


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"typing\.|pathlib\.|datetime\.|tradeforge\.[\w.]+\.", "", text)
    text = re.sub(r"Annotated\[(\w+), .*?\)\]", r"\1", text)  # drop validators (and their addresses)
    text = re.sub(r"^Optional\[(.*)\]$", r"\1 | None", text)
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            shown = value.model_dump(exclude_defaults=True)
            return f"`{shown}`" if shown else "(see below)"
        return f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    value = field.default
    return f"`{value}`" if isinstance(value, Path) else f"`{value!r}`"


def _model_table(prefix: str, model: type[BaseModel]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        doc = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{key}` | {_type_name(field.annotation)} | {_default(field)} | {doc} |")
    return rows


def _model_doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def config_reference(registry: Registry | None = None) -> str:
    registry = registry or Registry.default(plugins=False)
    lines = []
    for title, model in _SECTIONS:
        prefix = "" if title == "top level" else f"{title}."
        lines += [f"#### {title}", "", _model_doc(model), "", *_model_table(prefix, model), ""]
    for kind in KIND_ORDER:
        lines += [f"#### {kind} mixins (`{_KIND_KEYS[kind]}`)", ""]
        lines += ["| name | parameter | default | bounds | optimization range | meaning |", "|---|---|---|---|---|---|"]
        for mixin in registry.mixins(kind):
            lines.append(f"| `{mixin.name}` | | | | | {' '.join((mixin.__doc__ or '').split())} |")
            for param, spec in mixin.param_specs.items():
                bounds = "|".join(spec.choices) if spec.choices else f"{spec.low}..{spec.high}"
                lines.append(
                    f"| | `{param}` | `{spec.default!r}` | {bounds.replace('|', ' / ')} | "
                    f"{spec.describe_range().replace('|', ' / ')} | {spec.doc} |"
                )
        lines.append("")
    lines += ["#### presets (`strategy.preset`)", "", "| preset | composition |", "|---|---|"]
    for name, cls in registry.presets().items():
        lines.append(f"| `{name}` | {' '.join((cls.__doc__ or '').split())} |")
    return "\n".join(lines).rstrip() + "\n"


def splice(readme: str, reference: str) -> str:
    """The README text with the generated block between the markers replaced."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{reference}{END}{tail}"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(splice(target.read_text(encoding="utf-8"), config_reference()), encoding="utf-8")
