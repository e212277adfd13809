"""`sunbid serve --workers N`: N server processes on one listening socket.

The socket is bound once, here, and handed to each child (`serve --fd`): the
kernel gives each new connection to one of the processes accepting on it, so
the port stays the same and a child's death closes only its own
connections (their clients resume elsewhere with `since`). A child that dies
is started again, after a pause that grows while children keep dying. On
SIGTERM or SIGINT every child is told the same and this process waits for
them: each says "going away" to its streams first (cli._Server).

Only a deployment whose processes can share the log and the bus may run
several: PostgreSQL and Redis. The caller refuses the rest, with a message.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

log = logging.getLogger("sunbid")

RESTART_DELAYS = (0.5, 1, 2, 5, 10)  # after unexpected exits in a row
POLL_SECONDS = 0.2
STOP_SECONDS = 20.0  # children get this long after SIGTERM, then SIGKILL


def serve_workers(host: str, port: int, workers: int, extra: list[str]) -> int:
    listener = socket.create_server((host, port), backlog=2048)
    listener.set_inheritable(True)
    fd = listener.fileno()
    command = [sys.executable, "-m", "server", "serve", "--fd", str(fd), *extra]
    children: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    stopping = False
    failures = 0  # unexpected exits in a row: a child that ran a minute resets it

    def spawn(slot: int) -> None:
        children[slot] = subprocess.Popen(command, pass_fds=(fd,))
        started[slot] = time.monotonic()

    def stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Sunbid: {workers} processes on {host}:{port} (pid {os.getpid()})", flush=True)
    for slot in range(workers):
        spawn(slot)
    deadline: float | None = None
    while True:
        time.sleep(POLL_SECONDS)
        if stopping:
            deadline = deadline or time.monotonic() + STOP_SECONDS
            running = [c for c in children.values() if c.poll() is None]
            if not running:
                listener.close()
                return 0
            if time.monotonic() > deadline:
                for child in running:
                    child.kill()
            continue
        for slot, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            failures = 1 if time.monotonic() - started[slot] > 60 else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
            log.error(
                "server process %d exited with %s; another starts in %s s", child.pid, code, delay
            )
            time.sleep(delay)
            if not stopping:
                spawn(slot)
