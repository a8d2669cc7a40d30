"""E-mail through aiosmtplib: a multipart message (plain text + HTML), STARTTLS, SSL or plain SMTP.
The Message-ID is derived from the alerts' dedupe keys, so a resend after a crash is recognisable
(and collapsed by most mail clients)."""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from pydantic import SecretStr

from tradeforge.config.schema import EmailConfig
from tradeforge.notifications.channels.base import Channel
from tradeforge.notifications.render import Rendered
from tradeforge.resilience.errors import Fatal, Rejected, Temporary

log = logging.getLogger("tradeforge.notifications.email")


class EmailChannel(Channel):
    name = "email"

    def __init__(self, config: EmailConfig, password: SecretStr | None) -> None:
        super().__init__(config.events, config.min_level)
        self.config = config
        self.password = password

    def destinations(self) -> list[str]:
        return ["email"]

    async def start(self) -> None:
        if self.config.user and self.password is None:
            raise Fatal(
                f"notifications.email: no SMTP password for user {self.config.user!r} "
                f"(set {self.config.password_env} or password_file)"
            )
        try:
            smtp = self._client()
            await smtp.connect()
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning(
                "notifications.email: SMTP server %s:%s unreachable at start (%s); trading goes on, "
                "e-mails wait in the outbox",
                self.config.host,
                self.config.port,
                exc,
            )

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.security == "ssl",
            start_tls=True if c.security == "starttls" else False if c.security == "none" else None,
            timeout=c.timeout_s,
        )

    def compose(self, message: Rendered, keys: Sequence[str]) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.config.from_addr
        mail["To"] = ", ".join(self.config.to)
        mail["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@tradeforge>"
        mail.set_content(message.text)
        body = html.escape(message.text, quote=False).replace("\n", "<br>\n")
        mail.add_alternative(
            f'<html><body><div style="font-family:sans-serif">{body}</div></body></html>', subtype="html"
        )
        return mail

    async def send(self, destination: str, message: Rendered, keys: Sequence[str]) -> None:
        mail = self.compose(message, keys)
        c = self.config
        try:
            await aiosmtplib.send(
                mail,
                hostname=c.host,
                port=c.port,
                username=c.user,
                password=self.password.get_secret_value() if (c.user and self.password) else None,
                use_tls=c.security == "ssl",
                start_tls=True if c.security == "starttls" else False if c.security == "none" else None,
                timeout=c.timeout_s,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise Fatal(f"SMTP login refused for {c.user!r}: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPSenderRefused) as exc:
            raise Rejected(f"SMTP refused the addresses: {exc}") from None
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise Rejected(f"SMTP refused the message: {exc.code} {exc.message}") from None
            raise Temporary(f"SMTP temporary failure: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise Temporary(f"SMTP server {c.host}:{c.port} unreachable or failing: {exc}") from None
