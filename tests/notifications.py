"""The desktop's notification daemon, on a private D-Bus session bus, for the push tests.

Chromium on Linux shows web notifications through whichever program owns
`org.freedesktop.Notifications` on its session bus (the freedesktop.org
Desktop Notifications spec, 1.2). `NotificationServer` is that program: it
records what chromium shows, and `click()` answers the way a daemon does when
a person clicks a notification (`ActionInvoked` with the "default" action).
Chromium then fires a trusted `notificationclick` in the service worker, with
the right to focus or open a window that only a real click gives.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.threading import DBusRouter, Proxy, ReceiveStopped, open_dbus_connection

from tests.browser import require, wait_until

NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass(frozen=True)
class Shown:
    """One notification as chromium handed it to the desktop."""

    id: int
    summary: str
    body: str
    actions: list[str]


class NotificationServer:
    """A private session bus, and a notification daemon on it.

    Chromium on Linux shows web notifications through whichever daemon owns
    `org.freedesktop.Notifications` on its session bus; `click()` answers the
    way a daemon does when a person clicks one (`ActionInvoked` "default").
    """

    def __init__(self) -> None:
        self.shown: list[Shown] = []
        self.closed: list[int] = []
        self._dir = Path(tempfile.mkdtemp(prefix="sunbid-bus-"))
        self._ids = itertools.count(1)
        self._bus: subprocess.Popen[bytes] | None = None
        self._connection: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"unix:path={self._dir / 'bus'}"

    def start(self) -> NotificationServer:
        config = self._dir / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=self._dir / "bus"))
        self._bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._connection = wait_until(self._connect, "the session bus to listen", 10)
        with DBusRouter(self._connection) as router:
            (owned,) = Proxy(message_bus, router, timeout=10).RequestName(NOTIFICATIONS, 4)
        assert owned == 1, f"could not own {NOTIFICATIONS} on the private bus"
        self._thread = threading.Thread(target=self._serve, name="notifications", daemon=True)
        self._thread.start()
        return self

    def _connect(self) -> Any:
        try:
            return open_dbus_connection(self.address)
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # the daemon has not bound or not started listening yet

    def stop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
        if self._thread is not None:
            self._thread.join(5)
        if self._bus is not None:
            self._bus.terminate()
            self._bus.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def wait_shown(self, summary: str, after: int = 0, timeout: float = 10.0) -> Shown:
        """The first notification titled `summary` among those shown after the first `after`."""

        def find() -> Shown | None:
            with self._lock:
                return next((s for s in self.shown[after:] if s.summary == summary), None)

        found: Shown = wait_until(find, f"a notification {summary!r} on the desktop", timeout)
        return found

    def click(self, shown: Shown) -> None:
        emitter = DBusAddress(NOTIFICATIONS_PATH, interface=NOTIFICATIONS)
        self._connection.send(new_signal(emitter, "ActionInvoked", "us", (shown.id, "default")))

    def _serve(self) -> None:
        while True:
            try:
                message = self._connection.receive()
            except (ReceiveStopped, OSError, ValueError):
                return
            if message.header.message_type == MessageType.method_call:
                self._connection.send(self._answer(message))

    def _answer(self, call: Any) -> Any:
        member = call.header.fields.get(HeaderFields.member)
        if member == "GetCapabilities":
            return new_method_return(call, "as", (["actions", "body", "body-hyperlinks"],))
        if member == "GetServerInformation":
            return new_method_return(call, "ssss", ("sunbid-tests", "sunbid", "1", "1.2"))
        if member == "Notify":
            _app, replaces, _icon, summary, body, actions, _hints, _timeout = call.body
            shown = Shown(replaces or next(self._ids), summary, body, list(actions))
            with self._lock:
                self.shown.append(shown)
            return new_method_return(call, "u", (shown.id,))
        if member == "CloseNotification":
            with self._lock:
                self.closed.append(call.body[0])
            return new_method_return(call)
        return new_error(call, "org.freedesktop.DBus.Error.UnknownMethod")


@contextlib.contextmanager
def notification_server() -> Iterator[NotificationServer]:
    require(
        shutil.which("dbus-daemon") is not None,
        "dbus-daemon is missing: install Debian's dbus-daemon (apt-get install dbus-daemon),"
        " as .ci/run does",
    )
    server = NotificationServer()
    try:
        yield server.start()
    finally:
        server.stop()
