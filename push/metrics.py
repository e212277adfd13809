"""What the push worker counts, and how the web server gets to see it.

The worker is a process of its own (push/process.py), so its counters cannot
live in the web server's memory. It counts with prometheus_client in its
multiprocess mode: each count is a write into a small memory-mapped file in
a directory the web server creates for it (a fresh one per server start;
those of servers killed before they could remove theirs go at the next
start) and hands over in `PROMETHEUS_MULTIPROC_DIR`; the server's `/metrics` reads the
files at scrape time. Why this rather than asking the worker, or push.db:

- nothing crosses between the processes while sending: a count is a write
  to memory, and the server reads the files only when scraped;
- a worker that is restarted after a crash writes a new file (named by its
  pid) while the dead one's stays, so the totals never go backwards;
- it is prometheus_client's own mechanism for several processes, so the
  same directory can take the web processes' counters too once several of
  them share one port (docs/operations.md, "Several processes").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from push.queue import Outcome, State

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import
DIRECTORY_PREFIX = "sunbid-push-metrics-"  # then the web server's pid
OUTCOMES = ("delivered", "gone", "failed", "retry")
WEBHOOK_OUTCOMES = ("delivered", "retry", "disabled")

# Counted in the worker process only; `registry=None`: the worker serves no
# metrics itself, the web server reads the files it writes.
DELIVERIES = Counter(
    "sunbid_push_deliveries",
    "Push attempts by outcome",
    ["outcome"],
    registry=None,
)

# Likewise for webhooks (push/webhooks/sender.py, in the same process).
WEBHOOK_DELIVERIES = Counter(
    "sunbid_webhook_deliveries",
    "Webhook attempts by outcome",
    ["outcome"],
    registry=None,
)


def outcome_label(outcome: Outcome) -> str:
    """delivered (2xx), gone (404/410), failed (final), retry (queued again)."""
    return {
        State.DELIVERED: "delivered",
        State.GONE: "gone",
        State.FAILED: "failed",
        State.QUEUED: "retry",
    }[outcome.state]


class WorkerMetrics:
    """The web server's side: the directory the worker writes to, read at scrape time."""

    def __init__(self) -> None:
        _remove_abandoned()
        prefix = f"{DIRECTORY_PREFIX}{os.getpid()}-"
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))

    def environ(self) -> dict[str, str]:
        return {DIRECTORY_VARIABLE: str(self.directory)}

    def deliveries(self) -> dict[str, float]:
        """Attempts by outcome, summed over every worker this server has run."""
        return self._summed("sunbid_push_deliveries_total", OUTCOMES)

    def webhook_deliveries(self) -> dict[str, float]:
        """Webhook attempts by outcome: delivered (2xx), retry (failed, to be
        tried again), disabled (failed, and the webhook given up on)."""
        return self._summed("sunbid_webhook_deliveries_total", WEBHOOK_OUTCOMES)

    def _summed(self, sample_name: str, outcomes: tuple[str, ...]) -> dict[str, float]:
        counts = dict.fromkeys(outcomes, 0.0)
        if not self.directory.is_dir():
            return counts
        reader = MultiProcessCollector(None, str(self.directory))  # type: ignore[no-untyped-call]
        families: list[Metric] = list(reader.collect())  # type: ignore[no-untyped-call]
        for family in families:
            for sample in family.samples:
                if sample.name == sample_name:
                    outcome = sample.labels.get("outcome", "")
                    counts[outcome] = counts.get(outcome, 0.0) + sample.value
        return counts

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _remove_abandoned() -> None:
    """Remove the directories of servers that were killed before they could (by pid)."""
    for directory in Path(tempfile.gettempdir()).glob(DIRECTORY_PREFIX + "*"):
        pid = directory.name.removeprefix(DIRECTORY_PREFIX).partition("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
