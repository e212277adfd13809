"""Filing the public's cases (回应) through the API, for the respond benchmarks.

Filing is rate-limited per address and per device (20 at once, then one
every 30 s; a device 5, then one every 10 min): the benchmarks raise both
limits through the settings the server reads, so that only the server's own
work is measured. Each asker has its own keep-alive connection, source
address (127.0.0.2-9) and `X-Device-Id`, and every filing its own
`Idempotency-Key`, as the app sends them.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from typing import Any

import orjson
from common import HttpConn, Server, ServerError, source_address

# The per-address and per-device limits, out of the way.
UNLIMITED = {
    "SUNBID_ASK_BURST": "1000000",
    "SUNBID_ASK_REFILL_SECONDS": "0.001",
    "SUNBID_ASK_DEVICE_BURST": "1000000",
    "SUNBID_ASK_DEVICE_REFILL_SECONDS": "0.001",
}
# The agencies of directory.toml and a category each of them trades.
AGENCIES = {
    "YW-GGZY": "construction",
    "YW-ZFCG": "gov_procurement",
    "YW-CQJYS": "state_assets",
    "YW-ZRZY": "land",
    "YW-NCCQ": "rural_property",
    "YW-PWQ": "emission_rights",
}
QUESTION = (
    "请问本项目招标文件第三章评分办法中“类似业绩”是否包括在建项目？"
    "投标保证金能否以银行保函形式提交？开标时间是否因节假日顺延？"
)  # about 60 characters, like a bidder's question
CONTACT = "139 0000 {:04d}"


def project_ids(per_agency: int) -> list[tuple[str, str, str]]:
    """(project id, agency, category) of `per_agency` projects of each agency."""
    return [
        (f"Q{n:02d}-{agency}", agency, category)
        for agency, category in AGENCIES.items()
        for n in range(per_agency)
    ]


async def create_projects(server: Server, projects: list[tuple[str, str, str]]) -> None:
    http = await HttpConn.open(server.port)
    try:
        for pid, agency, category in projects:
            body = {"id": pid, "title": "咨询基准项目", "category": category, "agency": agency}
            status, resp = await http.post_json("/api/projects", body, server.token)
            if status != 201:
                raise ServerError(f"POST /api/projects -> {status}: {resp[:300]!r}")
    finally:
        http.close()


def device(i: int) -> str:
    return f"bench-device-{i:04d}"


def headers(dev: str, key: bool = True) -> dict[str, str]:
    """What the app sends with a filing: its device, and a key of its own for
    the filing (kept until the server answers, to send again after a lost 201)."""
    sent = {"Content-Type": "application/json", "X-Device-Id": dev}
    if key:
        sent["Idempotency-Key"] = str(uuid.uuid4())
    return sent


async def ask(
    http: HttpConn, project: str, i: int, dev: str, key: bool = True
) -> tuple[int, bytes]:
    body = orjson.dumps({"question": f"{QUESTION}（{i}）", "contact": CONTACT.format(i % 10000)})
    return await http.request(
        "POST",
        f"/api/projects/{project}/enquiries",
        body,
        headers(dev, key),
    )


async def file_request(http: HttpConn, agency: str, i: int, dev: str) -> tuple[int, bytes]:
    body = orjson.dumps(
        {
            "agency": agency,
            "subject": f"申请公开某项目合同履约验收材料（{i}）",
            "description": "申请公开该项目的合同履约验收报告及付款凭证，用于了解资金使用情况。",
            "contact": CONTACT.format(i % 10000),
        }
    )
    return await http.request(
        "POST",
        "/api/disclosure-requests",
        body,
        headers(dev),
    )


async def fill(
    server: Server, kind: str, targets: list[str], count: int, askers: int = 16
) -> dict[str, Any]:
    """File `count` cases (kind "enquiry": on the projects in `targets`, in turn;
    "request": to the agencies in `targets`) from `askers` concurrent askers."""
    conns = [await HttpConn.open(server.port, source_address(i)) for i in range(askers)]
    statuses: collections.Counter[int] = collections.Counter()
    ids: list[str] = []
    issued = 0
    t0 = time.perf_counter()

    async def loop(a: int, http: HttpConn) -> None:
        nonlocal issued
        while issued < count:
            i = issued
            issued += 1
            target = targets[i % len(targets)]
            if kind == "enquiry":
                status, body = await ask(http, target, i, device(a))
            else:
                status, body = await file_request(http, target, i, device(a))
            statuses[status] += 1
            if status != 201:
                raise ServerError(f"filing a {kind} -> {status}: {body[:300]!r}")
            ids.append(orjson.loads(body)["id"])

    try:
        await asyncio.gather(*(loop(a, c) for a, c in enumerate(conns)))
    finally:
        for c in conns:
            c.close()
    took = time.perf_counter() - t0
    return {"filed": len(ids), "seconds": took, "per_s": len(ids) / took, "ids": ids}
