"""A fake Telegram Bot API server on loopback for python-telegram-bot, with fault injection.

It answers `getMe`, `sendMessage`, `getUpdates`, `deleteWebhook`, `setMyCommands` in the shapes of the
recorded responses in ../shared/data/telegram/, records every message it accepts, and can be told to
answer 429 with `retry_after`, 5xx, 401 (bad token), or hang. Like the real API it refuses messages
over 4096 characters, HTML it cannot parse, and chats it does not know."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "s", "code", "pre", "a", "tg-spoiler", "blockquote"}
_TAG = re.compile(r"<(/?)([a-zA-Z-]+)[^>]*>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


@dataclass
class Sent:
    chat_id: int
    text: str
    at: float  # time.monotonic() when accepted


@dataclass
class FakeBotApi:
    token: str = "123456:TEST-token_abc"
    chats: set[int] = field(default_factory=lambda: {111, 222, -100500})
    sent: list[Sent] = field(default_factory=list)
    mode: str = "ok"  # ok | 5xx | 429 | hang | bad_token
    retry_after: int = 1
    fail_next: int = 0  # the next N sendMessage calls get `fail_with` (then back to `mode`)
    fail_with: str = "5xx"
    fail_every: int = 0  # every Nth sendMessage call gets `fail_with` (a storm), 0: never
    calls: list[tuple[str, float]] = field(default_factory=list)  # (method, monotonic time) of every call
    updates: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _next_update: int = 525704898
    _sends: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def texts(self, chat_id: int | None = None) -> list[str]:
        with self._lock:
            return [s.text for s in self.sent if chat_id is None or s.chat_id == chat_id]

    def push_command(self, chat_id: int, text: str, user_id: int = 1585844777, date: float | None = None) -> None:
        """Queue an incoming message, shaped like camel_updates-single.json."""
        with self._lock:
            self._next_update += 1
            self.updates.append(
                {
                    "update_id": self._next_update,
                    "message": {
                        "message_id": self._next_update % 100_000,
                        "from": {"id": user_id, "is_bot": False, "first_name": "John"},
                        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group", "first_name": "John"},
                        "date": int(time.time() if date is None else date),
                        "text": text,
                        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
                        if text.startswith("/")
                        else [],
                    },
                }
            )

    # --- the HTTP side ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        self.calls.append((method, time.monotonic()))
        params: dict[str, Any] = dict(await request.post()) if request.method == "POST" else {}
        if not params and request.can_read_body:
            try:
                params = json.loads(await request.text())
            except ValueError:
                params = {}
        if token != self.token or self.mode == "bad_token":
            return _error(401, "Unauthorized")
        if method == "getMe":
            return _ok({"id": 770882310, "is_bot": True, "first_name": "tradeforgeBot", "username": "tradeforgeBot"})
        if method in ("deleteWebhook", "setMyCommands"):
            return _ok(True)
        if method == "getUpdates":
            return await self._get_updates(params)
        if method != "sendMessage":
            return _error(404, "Not Found: method not found")
        failure = self.mode
        self._sends += 1
        if self.fail_every and self._sends % self.fail_every == 0:
            failure = self.fail_with
        if self.fail_next > 0:
            self.fail_next -= 1
            failure = self.fail_with
        if failure == "hang":
            await asyncio.sleep(3600)
        if failure == "5xx":
            return _error(502, "Bad Gateway")
        if failure == "429":
            return _error(429, f"Too Many Requests: retry after {self.retry_after}", {"retry_after": self.retry_after})
        chat_id = int(params.get("chat_id", 0))
        text = str(params.get("text", ""))
        if chat_id not in self.chats:
            return _error(400, "Bad Request: chat not found")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        if params.get("parse_mode") == "HTML" and not _valid_html(text):
            return _error(400, "Bad Request: can't parse entities: unsupported start tag or unescaped character")
        with self._lock:
            self.sent.append(Sent(chat_id, text, time.monotonic()))
            message_id = len(self.sent)
        return _ok(
            {
                "message_id": message_id,
                "from": {"id": 770882310, "is_bot": True, "first_name": "tradeforgeBot", "username": "tradeforgeBot"},
                "chat": {"id": chat_id, "first_name": "John", "type": "private" if chat_id > 0 else "group"},
                "date": int(time.time()),
                "text": re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"),
            }
        )

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
        while True:
            with self._lock:
                fresh = [u for u in self.updates if u["update_id"] >= offset]
            if fresh or time.monotonic() >= deadline:
                return _ok(fresh)
            await asyncio.sleep(0.02)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def _valid_html(text: str) -> bool:
    """What Telegram's HTML parser insists on: known tags, balanced; `<` and `&` only as markup/entities."""
    stack: list[str] = []
    for match in _TAG.finditer(text):
        closing, tag = match.group(1), match.group(2).lower()
        if tag not in ALLOWED_TAGS:
            return False
        if closing:
            if not stack or stack.pop() != tag:
                return False
        else:
            stack.append(tag)
    if stack:
        return False
    bare = _TAG.sub("", text)
    if "<" in bare or ">" in bare:
        return False
    return all(_ENTITY.match(bare, i) for i in (m.start() for m in re.finditer("&", bare)))


@contextmanager
def running(api: FakeBotApi | None = None) -> Iterator[FakeBotApi]:
    """Serve `api` on 127.0.0.1 (a free port) from a thread for the duration of the block."""
    api = api or FakeBotApi()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", api.handle)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)

    async def serve() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", api.port)
        await site.start()
        api.port = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "fake Bot API did not start"
    try:
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(10)  # handlers left hanging
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _cancel_the_rest() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
