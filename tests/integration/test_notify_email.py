"""E-mail alerts through the real aiosmtplib against aiosmtpd on loopback: multipart (plain text and
HTML), login, a server unreachable at start (warn, keep the alerts, send once it is up), refusals."""

from __future__ import annotations

import email
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from notify_helpers import error, notifier, outbox_at
from pydantic import SecretStr

from tradeforge.config.schema import EmailConfig
from tradeforge.notifications.channels.email import EmailChannel


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"s3cret")
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(port: int, auth: bool = False) -> Iterator[Inbox]:
    inbox = Inbox()
    extra: dict[str, Any] = {"authenticator": check_login, "auth_require_tls": False} if auth else {}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **extra)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def channel(port: int, password: str | None = None, user: str | None = None) -> EmailChannel:
    config = EmailConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "user": user,
            "from": "bot@tradeforge.test",
            "to": ["ops@tradeforge.test", "me@tradeforge.test"],
            "min_level": "info",
            "timeout_s": 1,
        }
    )
    return EmailChannel(config, SecretStr(password) if password else None)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tradeforge.sqlite'}"


def parts(message: Message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for part in message.walk()
        if not part.is_multipart()
    }


def test_an_alert_arrives_as_plain_text_and_html_with_a_stable_message_id(url: str) -> None:
    port = free_port()
    outbox = outbox_at(url)
    with smtp_server(port, auth=True) as inbox:
        n = notifier(outbox, channel(port, password="s3cret", user="bot"))
        n.start()
        n.notify(error(1, "fill for BTC/USDT <rejected> & retried"))
        assert n.wait_idle(10)
        n.stop()
    [message] = inbox.messages
    assert message["Subject"] == "[notify-bot] Error"
    assert message["To"] == "ops@tradeforge.test, me@tradeforge.test"
    assert message["Message-ID"].endswith("@tradeforge>")
    body = parts(message)
    assert "fill for BTC/USDT <rejected> & retried #1" in body["text/plain"]
    assert "fill for BTC/USDT &lt;rejected&gt; &amp; retried #1" in body["text/html"]
    assert outbox.rows()[0].status == "delivered"


def test_a_server_unreachable_at_start_warns_and_the_alert_goes_out_once_it_is_up(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    outbox = outbox_at(url)
    with caplog.at_level(logging.WARNING):
        n = notifier(outbox, channel(port))
        n.start()
        n.notify(error(1))
        time.sleep(0.5)
    assert "unreachable at start" in caplog.text
    assert outbox.rows()[0].status == "pending" and outbox.rows()[0].attempts >= 1
    with smtp_server(port) as inbox:
        assert n.wait_idle(10)
        n.stop()
    assert len(inbox.messages) == 1


def test_a_missing_password_disables_email_with_a_clear_warning_and_keeps_the_alerts(url: str) -> None:
    warnings: list[str] = []
    outbox = outbox_at(url)
    n = notifier(outbox, channel(free_port(), user="bot"), warn=warnings.append)
    n.start()
    n.notify(error(1))
    assert n.wait_idle(10)
    n.stop()
    assert warnings == [
        "notifications.email disabled: notifications.email: no SMTP password for user 'bot' "
        "(set TRADEFORGE_SMTP_PASSWORD or password_file) (alerts are kept in the outbox)"
    ]
    assert outbox.rows()[0].status == "pending"


def test_a_refused_login_dead_letters_without_retrying(url: str) -> None:
    port = free_port()
    outbox = outbox_at(url)
    with smtp_server(port, auth=True) as inbox:
        n = notifier(outbox, channel(port, password="wrong", user="bot"))
        n.start()
        n.notify(error(1))
        assert n.wait_idle(10)
        n.stop()
    assert inbox.messages == []
    [row] = outbox.rows()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "SMTP login refused" in (row.last_error or "") and "wrong" not in (row.last_error or "")


def test_a_telegram_outage_is_reported_once_by_email_and_so_is_its_end(url: str) -> None:
    from fake_bot_api import FakeBotApi, running
    from notify_helpers import telegram

    port = free_port()
    outbox = outbox_at(url)
    with smtp_server(port) as inbox, running(FakeBotApi(mode="5xx")) as api:
        n = notifier(outbox, telegram(api), channel(port))
        n.start()
        n.notify(error(1))
        time.sleep(1.5)  # several open -> half-open -> open cycles: still one outage
        api.mode = "ok"
        assert n.wait_idle(10)
        n.stop()
    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects == [
        "[notify-bot] Error",
        "[notify-bot] Circuit breaker opened",
        "[notify-bot] Circuit breaker closed",
    ]
    assert len(api.texts()) == 1, "Telegram gets the alert, not news of its own outage"
