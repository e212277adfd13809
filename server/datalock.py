"""One server (or one restore) per data directory, enforced by the kernel.

The web server holds an exclusive `flock` on `sunbid.lock` in the data
directory for as long as it runs; `sunbid restore` takes the same lock before
it touches a file. The kernel drops the lock when its holder exits, however
it exits (a SIGKILL included), so a stale lock file never blocks anyone. The
push worker and the CLI's other commands open the databases beside the
server and never take it.
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


def lock_data_dir(data_dir: Path, purpose: str) -> IO[str]:
    """Take the lock, or raise DataDirBusy. Keep the returned file open to hold it.

    `purpose` (e.g. "sunbid serve") is written into the file, so the next one
    refused can say who holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read(200).strip() or "another process"
        file.close()
        raise DataDirBusy(
            f"the data directory {data_dir} is in use by {holder} (it holds {path}). "
            "Stop that first, or set SUNBID_DATA_DIR to another directory."
        ) from None
    except BaseException:
        file.close()
        raise
    file.truncate(0)
    file.write(f"{purpose} (pid {os.getpid()})\n")
    file.flush()
    return file


def unlock_data_dir(file: IO[str]) -> None:
    with contextlib.suppress(OSError):
        file.truncate(0)
    file.close()  # closing releases the flock
