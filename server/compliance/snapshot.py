"""The watchdog's state as bytes, so that a start replays only the log's tail.

A snapshot is worth only what made it: the same rules, calendar, catalogue
and categories, the same lead setting and the same code. `fingerprint`
digests all of them with a format number; a snapshot whose fingerprint is not
today's is discarded and the state is rebuilt from the log, never trusted.

The state is pickled. The data directory is as trusted as the log beside
it (whoever can write it can rewrite the log), and pickle is the fastest way
to bring back some hundred thousand small objects. Rules are not part of the
bytes: they are referred to by id and taken from today's rules file, so a
restored deadline and a new one share the same `Rule`.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import pickle
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from server.compliance import watchdog as watchdog_module
from server.compliance.rules import Rule, Rules
from server.compliance.watchdog import NO_DATA, Watchdog

FORMAT = 5  # raise when the pickled state's shape changes
CODE = (Path(watchdog_module.__file__), Path(__file__))  # the code that makes and reads the state
CHUNK = 250  # projects pickled per step: about 10 ms of the event loop each (1M events)


def fingerprint(data_files: Iterable[Path], lead_workdays: int) -> str:
    """What a snapshot must have been made with to be trusted."""
    digest = hashlib.sha256(f"sunbid-compliance-snapshot {FORMAT} {lead_workdays}\n".encode())
    for path in (*CODE, *data_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dumping(watchdog: Watchdog) -> Generator[None, None, bytes]:
    """Pickle the watchdog's state a chunk of projects at a time, yielding
    between chunks so that the caller can let the event loop run; returns
    the bytes. Nothing may change the state until it has returned.

    Each chunk is a pickle of its own (a small memo: one for the whole state
    grows to millions of entries, and each time it doubles the loop stalls).
    A project's objects all lie within it; the timer heap, the one thing that
    points across projects, is written as (project, rule, position) of each
    open deadline (a closed deadline's timers would never fire: left out).
    """
    head, projects, timers, counter, tallies = watchdog.state()
    items = list(projects.values())
    yield
    where: dict[int, tuple[str, str, int]] = {}
    for project in projects.values():
        for rule_id, deadlines in project.open.items():
            for index, deadline in enumerate(deadlines):
                where[id(deadline)] = (project.id, rule_id, index)
    pending = [
        (at, order, *where[id(deadline)], level)
        for at, order, deadline, level in timers
        if not deadline.closed and id(deadline) in where
    ]
    yield
    buffer = io.BytesIO()
    _Pickler(buffer).dump((FORMAT, head, counter, len(items), pending, tallies))
    yield
    for start in range(0, len(items), CHUNK):
        _Pickler(buffer).dump(items[start : start + CHUNK])
        yield
    return buffer.getvalue()


def dump(watchdog: Watchdog) -> bytes:
    """`dumping` in one go (verify, rebuild, tests)."""
    steps = dumping(watchdog)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return bytes(done.value)


def load(watchdog: Watchdog, blob: bytes) -> None:
    """Restore a state made by `dumping` with the same fingerprint."""
    global _loading
    _loading = watchdog.rules
    try:
        stream = io.BytesIO(blob)
        form, head, counter, count, pending, tallies = pickle.Unpickler(stream).load()
        if form != FORMAT:
            raise pickle.UnpicklingError(f"snapshot format {form}, not {FORMAT}")
        projects: dict[str, Any] = {}
        while len(projects) < count:
            for project in pickle.Unpickler(stream).load():
                projects[project.id] = project
    finally:
        _loading = None
    timers = [
        (at, order, projects[project_id].open[rule_id][index], level)
        for at, order, project_id, rule_id, index, level in pending
    ]
    heapq.heapify(timers)
    watchdog.restore((head, projects, timers, counter, tallies))


# Rules are pickled as their id and brought back from today's rules (a start
# loads one snapshot at a time, on the event loop's thread). The shared empty
# data mapping stays shared. Both through the pickler's dispatch table: a
# per-type lookup in C, no Python call for every other object.
_loading: Rules | None = None


def _rule(rule_id: str) -> Rule:
    if _loading is None or rule_id not in _loading:
        raise pickle.UnpicklingError(f"the snapshot refers to an unknown rule {rule_id!r}")
    return _loading[rule_id]


def _no_data() -> Mapping[str, Any]:
    return NO_DATA


def _reduce_rule(rule: Rule) -> tuple[Any, ...]:
    return (_rule, (rule.id,))


def _reduce_proxy(mapping: MappingProxyType[str, Any]) -> tuple[Any, ...]:
    if mapping is not NO_DATA:
        raise pickle.PicklingError("only the shared empty data mapping is a proxy")
    return (_no_data, ())


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.dispatch_table = {Rule: _reduce_rule, MappingProxyType: _reduce_proxy}
