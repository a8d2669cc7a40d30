"""Secrets (exchange keys, bot tokens, SMTP passwords) from a secret file or an environment
variable, never from the config; a missing one is reported by setting name, never by value."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from tradeforge.resilience.errors import Fatal


def find_secret(where: str, env: str, file: Path | None, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The secret from `file` if given (Fatal when unreadable or empty), else from the environment
    variable `env`; None when that is unset."""
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Fatal(f"{where}: cannot read the secret file {file}: {exc.strerror}") from None
        if not value:
            raise Fatal(f"{where}: the secret file {file} is empty")
        return SecretStr(value)
    value = (os.environ if environ is None else environ).get(env, "").strip()
    return SecretStr(value) if value else None


def read_secret(where: str, env: str, file: Path | None, environ: Mapping[str, str] | None = None) -> SecretStr:
    """Like find_secret, for a secret that must be there: Fatal when it is not."""
    secret = find_secret(where, env, file, environ)
    if secret is None:
        raise Fatal(f"{where}: environment variable {env} is not set (or give a secret file)")
    return secret
