"""Webhooks on PostgreSQL: two server processes, each with its worker, share
one schema; every webhook's events arrive exactly once each, in seq order,
whichever process published them and whichever worker sent them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Staff
from tests.services import postgres_schema, redis_url
from tests.standins import until
from tests.test_scaleout import Deployment
from tests.webhook_receiver import WebhookReceiver

HOOKS = 6
SENT = re.compile(r"webhook wh_\w+ seq=")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.in_thread() as running:
        yield running
        assert running.bad == []


def test_two_processes_compete_and_each_delivery_happens_once_in_order(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    with postgres_schema() as database:
        deployment = Deployment(tmp_path, database, redis_url())
        deployment.env["SUNBID_WEBHOOK_ALLOWED_HOSTS"] = f"http://127.0.0.1:{receiver.port}"
        try:
            servers = deployment.start(2)
            token = deployment.token()
            staff = [Staff(server, token) for server in servers]
            staff[0].project("PG-1")
            names = [f"h{i}" for i in range(HOOKS)]
            for i, name in enumerate(names):
                answer = staff[i % 2].client.post(
                    "/api/webhooks", json={"url": receiver.url(name), "topics": ["project:PG-1"]}
                )
                assert answer.status_code == 201, answer.text
                receiver.secret(name, answer.json()["secret"])
            sent = [staff[n % 2].publish("PG-1", "clarification")["seq"] for n in range(20)]
            for name in names:
                until(lambda name=name: len(receiver.got(name)) >= len(sent), 20)
            for name in names:
                assert receiver.seqs(name) == sent, f"{name}: once each, in seq order"

            def senders() -> list[int]:
                """Attempts each process's worker logged (a line after each answer)."""
                return [len(SENT.findall(server.log.read_text())) for server in servers]

            until(lambda: sum(senders()) >= HOOKS * len(sent))
            # Which worker sends a webhook is whichever claims it first (one may
            # well claim them all): what must hold is that no delivery is made twice.
            assert sum(senders()) == HOOKS * len(sent), "no attempt beyond the deliveries"
            for member in staff:
                member.client.close()
        finally:
            deployment.stop()
