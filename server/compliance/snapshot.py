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
import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from server.compliance import watchdog as watchdog_module
from server.compliance.rules import Rule, Rules
from server.compliance.watchdog import NO_DATA, Watchdog

FORMAT = 1  # raise when the pickled state's shape changes
CODE = (Path(watchdog_module.__file__), Path(__file__))  # the code that makes and reads the state


def fingerprint(data_files: Iterable[Path], lead_workdays: int) -> str:
    """What a snapshot must have been made with to be trusted."""
    digest = hashlib.sha256(f"sunbid-compliance-snapshot {FORMAT} {lead_workdays}\n".encode())
    for path in (*CODE, *data_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dump(watchdog: Watchdog) -> bytes:
    """The watchdog's state. Nothing may change it meanwhile (it may run in a thread)."""
    buffer = io.BytesIO()
    _Pickler(buffer).dump(watchdog.state())
    return buffer.getvalue()


def load(watchdog: Watchdog, blob: bytes) -> None:
    """Restore a state made by `dump` with the same fingerprint."""
    watchdog.restore(_Unpickler(io.BytesIO(blob), watchdog.rules).load())


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Rule):
            return ("rule", obj.id)
        if obj is NO_DATA:  # a shared read-only mapping: not picklable, and kept shared
            return ("no-data",)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, rules: Rules) -> None:
        super().__init__(file)
        self.rules = rules

    def persistent_load(self, pid: Any) -> Any:
        if pid == ("no-data",):
            return NO_DATA
        kind, rule_id = pid
        if kind != "rule" or rule_id not in self.rules:
            raise pickle.UnpicklingError(f"the snapshot refers to an unknown rule {rule_id!r}")
        return self.rules[rule_id]
