"""Load a bot config: YAML files merged in order, then `TRADEFORGE__SECTION__KEY` env overrides,
then validation. Every problem is reported at once with its dotted path; secrets are masked."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from tradeforge.config.schema import BotConfig
from tradeforge.resilience.errors import ConfigError, Problem

ENV_PREFIX = "TRADEFORGE__"
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|private_?key)", re.IGNORECASE)
_POINTER = re.compile(r"_(env|file)$", re.IGNORECASE)  # names where a secret lives (`token_env`), not secrets


def _secret_name(key: str) -> bool:
    return bool(key and _SECRET_KEY.search(key) and not _POINTER.search(key))


MASK = "***"


def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML mapping; a syntax error is reported with the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "config file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), f"cannot read config file: {exc.strerror}")]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path} line {mark.line + 1} column {mark.column + 1}" if mark else str(path)
        raise ConfigError([Problem(where, f"malformed YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), f"malformed YAML: {exc}")]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError([Problem(str(path), "the top level must be a mapping of keys to values")])
    return loaded


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay wins; mappings merge key by key, everything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`TRADEFORGE__BROKER__CASH=5000` -> {'broker': {'cash': 5000}}; values are parsed as YAML scalars."""
    overrides: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError([Problem(name, "conflicts with another TRADEFORGE__ variable")])
        node[path[-1]] = value
    return overrides


def merged_document(paths: Sequence[Path], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for path in paths:
        document = deep_merge(document, read_yaml(Path(path)))
    return deep_merge(document, env_overrides(os.environ if environ is None else environ))


def load_config(paths: Sequence[Path] | Path, environ: Mapping[str, str] | None = None) -> BotConfig:
    """Files merged in order, env overrides on top, validated; raises ConfigError listing every problem."""
    files = [paths] if isinstance(paths, str | Path) else list(paths)
    if not files:
        raise ConfigError([Problem("--config", "give at least one config file")])
    document = merged_document(files, environ)
    source = " + ".join(str(p) for p in files)
    try:
        return BotConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc), source=source) from None


def problems_from_validation(
    exc: ValidationError, prefix: str = "", root: type[BaseModel] | None = None
) -> list[Problem]:
    """Pydantic errors as Problems: dotted path, a plain message, the offending value (masked)."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        where = ".".join(([prefix] if prefix else []) + loc) or "(top level)"
        message = error["msg"]
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}" + _suggestion(loc[-1], _allowed_keys(loc[:-1], root or BotConfig))
            value = None
        elif error["type"] == "missing":
            value = None
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if any(_secret_name(part) for part in loc):
            value = MASK if value is not None else None
        if isinstance(value, dict | list):
            value = None  # a whole section is not a useful "offending value"
        problems.append(Problem(where, message, value))
    return problems


def _allowed_keys(parent_loc: Sequence[str], root: type[BaseModel]) -> list[str]:
    model: type[BaseModel] | None = root
    for part in parent_loc:
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = _model_in(annotation)
    return [field.alias or name for name, field in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _suggestion(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; allowed: {', '.join(options)}" if options else ""


def redacted(value: Any, key: str = "") -> Any:
    """A JSON-able copy with secrets replaced by '***' (by type, and by key name as a safety net:
    everything below a secret-looking key is masked)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        secret = _secret_name(key)
        return {k: redacted(v, key if secret else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v, key) for v in value]
    if _secret_name(key) and value not in (None, ""):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
