"""Child processes of the integration tests: ``twistd`` gateways, clients, ports.

The gateway runs as ``twistd containerssh`` in a separate process where a test
needs it to stop or die; these are the pieces such tests share.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater

from tests.integration.gateway import reactor

#: ``twistd`` from the running interpreter (the script may not be on PATH).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def twistd_args(config: str) -> list[str]:
    """The arguments of ``twistd containerssh -c config`` in the foreground, no pid file."""
    return [*TWISTD, "--nodaemon", "--pidfile=", "containerssh", "-c", config]


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so only the installed package is importable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepting(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1 at ``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Output(ProcessProtocol):
    """Collects a child's output (stdout and stderr together) and tells when it ended."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback((reason.value.exitCode, reason.value.signal))


def signal_quietly(process: Any, signum: int) -> None:
    """Send ``signum`` to ``process`` unless it has already exited."""
    try:
        process.signalProcess(signum)
    except error.ProcessExitedAlready:
        pass


async def until(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Poll ``condition`` (it may return a Deferred) every 0.1 s for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if isinstance(result, Deferred):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        await deferLater(reactor, 0.1, lambda: None)


async def until_accepting(port: int, seconds: float) -> None:
    """Wait until something listens on 127.0.0.1 at ``port``."""
    await until(lambda: accepting(port), seconds, f"a listener on port {port}")
