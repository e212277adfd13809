"""One server (or one restore) per data directory, enforced by the kernel.

The web server holds a `flock` on `sunbid.lock` in the data directory for as
long as it runs; `sunbid restore` takes the same lock, exclusively, before it
touches a file. With the log in SQLite the server's lock is exclusive too
(the log has one writer); with the log in PostgreSQL several servers may
share the directory, so theirs is shared and only keeps a restore out. The
kernel drops the lock when its holder exits, however it exits (a SIGKILL
included), so a stale lock file never blocks anyone. The push worker and the
CLI's other commands open the databases beside the server and never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "sunbid.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory's lock; the message names it."""


def lock_data_dir(data_dir: Path, purpose: str, *, shared: bool = False) -> IO[str]:
    """Take the lock, or raise DataDirBusy. Keep the returned file open to hold it.

    An exclusive holder writes `purpose` (e.g. "sunbid serve") into the
    file, so the next one refused can say who holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(file.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read(200).strip() or "a running sunbid serve"
        file.close()
        raise DataDirBusy(
            f"the data directory {data_dir} is in use by {holder} (it holds {path}). "
            "Stop that first, or set SUNBID_DATA_DIR to another directory."
        ) from None
    except BaseException:
        file.close()
        raise
    if not shared:
        file.truncate(0)
        file.write(f"{purpose} (pid {os.getpid()})\n")
        file.flush()
    return file


def unlock_data_dir(file: IO[str]) -> None:
    with contextlib.suppress(OSError):
        file.truncate(0)  # no one else writes it while this lock is held
    file.close()  # closing releases the flock
