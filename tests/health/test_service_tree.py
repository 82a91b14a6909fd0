"""The health answer follows the gateway's service tree (GatewayService.all_running)."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from conch_container.health import HealthResource
from conch_container.service import ComponentService, GatewayService
from tests.health.test_resource import ask, body
from tests.webhook.support import capturing_logger


class Gate(Service):
    """A service whose start waits until the test opens the gate."""

    def __init__(self, name: str) -> None:
        self.setName(name)
        self.gate: Deferred[None] = Deferred()

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        Service.startService(self)
        return self.gate


class Failing(Service):
    name = "failing"

    def startService(self) -> Any:
        raise RuntimeError("cannot start")


class ServiceTreeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.log, self.events = capturing_logger()
        self.root = GatewayService(self.log)
        self.first = ComponentService("first")
        self.first.setServiceParent(self.root)
        self.health = HealthResource(self.root.all_running, self.log)

    def status(self) -> int:
        return int(ask(self.health).responseCode)

    def test_ok_once_every_service_started(self) -> None:
        """503 before and during the start, 200 once every child runs."""
        gate = Gate("slow")
        gate.setServiceParent(self.root)
        self.assertEqual(self.status(), 503)
        started = self.root.startService()
        self.assertEqual(self.status(), 503)
        gate.gate.callback(None)
        self.successResultOf(started)
        self.assertEqual(self.status(), 200)
        self.assertEqual(body(ask(self.health)), b"ok")

    def test_flips_while_a_service_is_stopped(self) -> None:
        """A child stopped on its own turns the answer to 503; started again, back to 200."""
        self.successResultOf(self.root.startService())
        self.assertEqual(self.status(), 200)
        self.successResultOf(self.first.stopService())
        self.assertEqual(self.status(), 503)
        self.successResultOf(self.first.startService())
        self.assertEqual(self.status(), 200)

    def test_not_ok_once_stopping(self) -> None:
        """From the start of the shutdown on, the answer is 503."""
        self.successResultOf(self.root.startService())
        self.successResultOf(self.root.stopService())
        self.assertEqual(self.status(), 503)

    def test_not_ok_after_a_crash(self) -> None:
        """A child that failed to start leaves the tree unhealthy."""
        Failing().setServiceParent(self.root)
        self.successResultOf(self.root.startService())
        self.assertFalse(self.root.all_running())
        self.assertEqual(self.status(), 503)
