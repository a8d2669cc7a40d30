"""The shipped config templates: list them, and copy one out for a user to edit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradeforge.resilience.errors import ConfigError, Problem

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_DESCRIPTION = "# description:"


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    path: Path


def list_templates() -> list[Template]:
    templates = []
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        description = first[len(_DESCRIPTION) :].strip() if first.startswith(_DESCRIPTION) else ""
        templates.append(Template(path.stem, description, path))
    return templates


def get_template(name: str) -> Template:
    for template in list_templates():
        if template.name == name:
            return template
    known = ", ".join(t.name for t in list_templates())
    raise ConfigError([Problem("--template", f"unknown template (known: {known})", name)])


def write_template(name: str, output: Path, force: bool = False) -> Path:
    """Copy a template verbatim (comments included); never overwrite unless forced."""
    template = get_template(name)
    if output.exists() and not force:
        raise ConfigError([Problem(str(output), "already exists; pass --force to overwrite it")])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(template.path.read_text(encoding="utf-8"), encoding="utf-8")
    return output
