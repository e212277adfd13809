"""A channel's provider stand-in in a process of its own, for bench/channels.py.

    python bench/channel_sink.py sms|email|wechat N

Starts the tests' stand-in for the kind (tests/sms_service.py, which checks
every signature; tests/smtp_service.py, a real SMTP server; tests/
wechat_service.py with N followers `o<kind>…`), prints one JSON line with
the settings that point a server at it, then the number of messages it
accepted, a line every 0.1 s, until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sms_service import SmsService
from tests.smtp_service import MailServer
from tests.wechat_service import APPID, SECRET, WeChatService

WECHAT_TEMPLATE = "tpl-bench-event"


def openid(i: int) -> str:
    return f"obench{i:022d}"  # 28 characters, as WeChat's


async def main(kind: str, n: int) -> None:
    service: Any
    if kind == "sms":
        service = await SmsService().start()
        env = service.env()
        count = lambda: len(service.messages)  # noqa: E731
    elif kind == "email":
        service = await MailServer().start()
        env = {"SUNBID_SMTP_URL": service.url, "SUNBID_SMTP_FROM": "notice@sunbid.example"}
        count = lambda: len(service.received)  # noqa: E731
    else:
        service = await WeChatService().start()
        service.add_template(WECHAT_TEMPLATE, ["thing1", "thing2"])
        for i in range(n):
            service._followers[openid(i)] = True  # the account's followers, made at once
        env = {
            "SUNBID_WECHAT_APPID": APPID,
            "SUNBID_WECHAT_SECRET": SECRET,
            "SUNBID_WECHAT_TEMPLATE_EVENT": WECHAT_TEMPLATE,
            "SUNBID_WECHAT_API_BASE": service.origin,
            "SUNBID_WECHAT_OAUTH_BASE": service.origin,
        }
        count = lambda: len(service.messages)  # noqa: E731
    sys.stdout.write(orjson.dumps({"env": env}).decode() + "\n")
    sys.stdout.flush()
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: closed.set() if not sys.stdin.read(1) else None)
    while not closed.is_set():
        sys.stdout.write(f"{count()}\n")
        sys.stdout.flush()
        await asyncio.sleep(0.1)
    await service.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
