"""Channel secrets (bot token, SMTP password) from a file or an environment variable, never the
config; missing ones are reported by setting name, never by value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from tradeforge.resilience.errors import Fatal


def read_secret(where: str, env: str, file: Path | None, environ: Mapping[str, str] | None = None) -> SecretStr:
    """The secret from `file` if given, else from the environment variable `env`; Fatal when absent."""
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Fatal(f"{where}: cannot read secret file {file}: {exc.strerror}") from None
        if not value:
            raise Fatal(f"{where}: secret file {file} is empty")
        return SecretStr(value)
    value = (os.environ if environ is None else environ).get(env, "").strip()
    if not value:
        raise Fatal(f"{where}: environment variable {env} is not set (or give a secret file)")
    return SecretStr(value)
