"""Optuna RDB storage for studies: opening it with errors a user can act on (passwords never shown),
the heartbeat that lets a crashed worker's trial be failed, and the lock under which a worker counts
the study's trials and creates the next one, which keeps the trial count exact across processes."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import sqlite3
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tradeforge.persistence.database import normalise_url
from tradeforge.resilience.errors import ConfigError, Problem

log = logging.getLogger("tradeforge.optimize")
HEARTBEAT_SECONDS = 2
GRACE_SECONDS = 10  # a RUNNING trial without a heartbeat for this long belonged to a dead worker
BACKENDS = ("sqlite", "postgresql", "mysql")


def parse(url: str, where: str = "--storage") -> URL:
    """The URL as SQLAlchemy reads it (`postgresql://` means psycopg 3); ConfigError when malformed."""
    try:
        parsed = make_url(normalise_url(url))
    except (ArgumentError, ValueError):
        raise ConfigError(
            [
                Problem(
                    where,
                    "not a database URL; use e.g. sqlite:///optuna.sqlite or postgresql://user@host/db",
                    masked(url),
                )
            ]
        ) from None
    if parsed.get_backend_name() not in BACKENDS:
        raise ConfigError([Problem(where, f"unsupported database; use one of {', '.join(BACKENDS)}", shown(parsed))])
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise ConfigError([Problem(where, "an SQLite URL needs a file: sqlite:///path/optuna.sqlite", shown(parsed))])
    return parsed


def shown(url: URL | str) -> str:
    """A URL safe to print: the password is replaced by ***."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return masked(url)


def masked(raw: str) -> str:
    """A string that failed to parse as a URL, with anything between `:` and `@` after `//` hidden."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", raw)


def open_storage(url: str, where: str = "--storage") -> optuna.storages.RDBStorage:
    """The study storage at `url` (tables are created when missing); ConfigError when unreachable."""
    parsed = parse(url, where)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path, timeout=60) as connection:  # WAL: readers never block the writer
                connection.execute("PRAGMA journal_mode=WAL")
            connection.close()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError([Problem(where, f"cannot open the SQLite file: {exc}", shown(parsed))]) from None
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = optuna.storages.RDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
            )
        except (SQLAlchemyError, DBAPIError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigError([Problem(where, f"cannot open the study storage: {reason}", shown(parsed))]) from None
        except RuntimeError as exc:  # e.g. a schema written by a newer Optuna
            raise ConfigError([Problem(where, f"cannot use the study storage: {exc}", shown(parsed))]) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(storage.engine, "connect", _sync_at_checkpoints)
        storage.engine.dispose()  # the connections opened so far were made without it
    return storage


def _sync_at_checkpoints(connection: Any, record: Any) -> None:
    """SQLite in WAL mode with synchronous=NORMAL: a commit no longer waits for the disk (an fsync,
    a few milliseconds on a busy machine, about a dozen times per trial per worker), and a killed
    process still loses nothing; only a power cut may lose the last commits, whose trials run again."""
    connection.execute("PRAGMA synchronous=NORMAL")


class CreationLock:
    """Serialises "count the study's trials, then create one" across every process on the study.

    Optuna has no atomic "create a trial unless N exist" (its MaxTrialsCallback counts after the
    fact, so concurrent workers overshoot). SQLite studies lock a file beside the database (all its
    workers share the machine); PostgreSQL studies take a session advisory lock keyed by the study."""

    def __init__(self, url: str, study_name: str) -> None:
        parsed = parse(url)
        self._backend = parsed.get_backend_name()
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        self._handle: Any = None
        self._connection: Any = None
        self._local = threading.Lock()
        if self._backend == "sqlite":
            self._handle = open(f"{parsed.database}.lock", "a+b")  # noqa: SIM115 - held for the worker's life
        elif self._backend == "postgresql":
            self._engine = create_engine(parsed, poolclass=NullPool, connect_args={"connect_timeout": 10})
        else:
            log.warning("%s storage: the trial count is not locked and may overshoot", self._backend)

    @property
    def exclusive(self) -> bool:
        """Whether holding the lock keeps every other worker from creating a trial (not on MySQL)."""
        return self._backend in ("sqlite", "postgresql")

    def __enter__(self) -> CreationLock:
        self._local.acquire()
        if self._backend == "sqlite":
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
        elif self._backend == "postgresql":
            if self._connection is None:
                self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._backend == "sqlite":
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            elif self._backend == "postgresql" and self._connection is not None:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        finally:
            self._local.release()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._connection is not None:
            self._connection.close()
        if self._backend == "postgresql":
            self._engine.dispose()


class Heartbeat:
    """Records a running trial's heartbeat every HEARTBEAT_SECONDS from a thread, so a worker that
    dies (SIGKILL, power loss) leaves a trial the others can recognise as stale and fail. Optuna's own
    heartbeat thread only runs inside Study.optimize, which cannot create trials under CreationLock."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._stop = threading.Event()
        self._storage = storage
        self._trial_id = trial_id
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # a missed beat is retried; only a long outage fails the trial
                log.warning("heartbeat of trial %s failed: %s", self._trial_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
