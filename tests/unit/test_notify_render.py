"""Alert texts: templates with defaults, HTML escaping that survives any symbol, Telegram's 4096
limit, and the notifications config that refuses what cannot work."""

from __future__ import annotations

import pytest
from fake_bot_api import _valid_html

from tradeforge.config.loader import load_config
from tradeforge.notifications.render import TELEGRAM_LIMIT, Renderer, split_message
from tradeforge.resilience.errors import ConfigError

NASTY = {"symbol": "BTC/USDT", "side": "buy", "amount": "1_000", "price": "<2>&3", "client_order_id": "tf_a*b`c"}


def test_values_with_markup_characters_are_escaped_for_telegram_and_kept_in_plain_text() -> None:
    message = Renderer("my_bot").render([("order_filled", {**NASTY, "role": "entry"})])
    assert message.subject == "[my_bot] Order filled"
    assert "filled buy 1_000 BTC/USDT @ &lt;2&gt;&amp;3 (entry) order tf_a*b`c" in message.html
    assert "filled buy 1_000 BTC/USDT @ <2>&3 (entry) order tf_a*b`c" in message.text
    assert _valid_html(message.html)


def test_a_burst_renders_one_line_per_alert_under_one_title() -> None:
    message = Renderer("bot").render([("order_filled", NASTY)] * 3 + [("trade_closed", {"symbol": "ETH/USDT"})])
    assert message.html.startswith("<b>[bot] 4 trading updates</b>\n")
    assert message.html.count("\n") == 4


def test_a_template_override_replaces_the_default_and_a_missing_field_shows_a_question_mark() -> None:
    renderer = Renderer("bot", {"trade_closed": "{symbol} closed, PnL {pnl} ({nonexistent})"})
    assert renderer.line("trade_closed", {"symbol": "BTC/USDT", "pnl": "+1.00"}, escape=True) == (
        "BTC/USDT closed, PnL +1.00 (?)"
    )


def test_a_broken_template_never_loses_the_alert() -> None:
    line = Renderer("bot", {"error": "{message"}).line("error", {"message": "disk full"}, escape=False)
    assert "disk full" in line and "template error" in line


def test_long_text_is_split_on_line_breaks_under_the_limit() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(120))
    parts = split_message(text)
    assert len(parts) == 3 and all(len(p) <= TELEGRAM_LIMIT for p in parts)
    assert "\n".join(parts) == text


def test_a_single_over_long_line_is_cut_but_never_inside_an_entity() -> None:
    text = "a" * 4094 + "&amp;" + "b" * 100
    parts = split_message(text)
    assert parts[0] == "a" * 4094 and parts[1].startswith("&amp;")


def test_past_five_parts_the_rest_is_trimmed_with_a_note() -> None:
    parts = split_message("\n".join("y" * 1000 for _ in range(100)))
    assert len(parts) == 5 and all(len(p) <= TELEGRAM_LIMIT for p in parts)
    assert parts[-1].endswith("more lines not shown")


BASE = """\
strategy: {entry: {name: sma_cross}}
notifications:
"""


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        ("  telegram: {chat_ids: [12345, '@mychannel']}", "notifications.telegram.chat_ids.1", "valid integer"),
        ("  telegram: {chat_ids: []}", "notifications.telegram.chat_ids", "at least 1 item"),
        ("  telegram: {chat_ids: [1], api_base_url: 'ftp://x'}", "notifications.telegram.api_base_url", "match"),
        ("  telegram: {chat_ids: [1], events: [trade_closd]}", "notifications.telegram.events.0", "trade_closed"),
        ("  telegram: {chat_ids: [1], token: 'abc'}", "notifications.telegram", "unknown key 'token'"),
        ("  email: {host: h, from: me, to: [a@b.c]}", "notifications.email.from", "match"),
        ("  email: {host: h, from: a@b.c, to: [a@b.c], security: tls}", "notifications.email.security", "starttls"),
    ],
)
def test_unusable_notification_settings_are_refused_with_their_path(
    tmp_path, block: str, where: str, message: str
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BASE + block + "\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert where in text and message in text
    assert "'abc'" not in text, "a secret given in the wrong place is not echoed"


def test_numeric_chat_ids_given_as_strings_are_accepted(tmp_path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BASE + "  telegram: {chat_ids: ['-100123', 42]}\n")
    assert load_config(path).notifications.telegram.chat_ids == [-100123, 42]  # type: ignore[union-attr]
