"""A create call that fails unanswered leaves no container nobody knows of.

The engine carries on with a create request whose client gave up (the HTTP
timeout): the container appears afterwards, in state ``created``, and no
gateway would ever remove it. :meth:`Engine.create_container` finds it by the
label it gave the request and returns it as the result after all.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from conch_container.backend.docker.containerconfig import LABEL_CREATE, CreateRequest
from conch_container.backend.docker.engine import api as engine_module
from conch_container.backend.docker.engine.api import Engine
from conch_container.backend.docker.engine.client import EngineSettings
from conch_container.backend.docker.engine.errors import EngineError
from tests.docker_support import DOCKER_HOST, GUEST_IMAGE, docker_client


class StandInClient:
    """The two docker-py calls a create makes, with the failures of a struggling engine.

    :param create_error: what ``create_container_from_config`` raises after
        it has (or has not) created the container.
    :param created: whether the engine created the container all the same.
    :param visible_after: how many listings miss the container before it shows.
    """

    def __init__(self, create_error: Exception, created: bool, visible_after: int = 0) -> None:
        self.create_error = create_error
        self.created = created
        self.visible_after = visible_after
        self.labels: dict[str, str] = {}
        self.listings = 0
        self.lock = threading.Lock()

    def create_container_from_config(self, body: dict[str, Any], **kwargs: Any) -> Any:
        self.labels = dict(body["Labels"])
        raise self.create_error

    def containers(self, all: bool, filters: dict[str, str]) -> list[dict[str, str]]:
        with self.lock:
            self.listings += 1
            if self.listings == 1:
                # The engine is slow to answer this one too.
                raise requests.exceptions.ReadTimeout("read timed out")
            label, _, value = filters["label"].partition("=")
            if not self.created or self.listings <= self.visible_after + 1:
                return []
            if self.labels.get(label) != value:
                return []
            return [{"Id": "late-container"}]


def create_request() -> CreateRequest:
    return CreateRequest(
        body={"Image": "x", "Labels": {"containerssh_connection_id": "c1"}},
        name=None,
        platform=None,
        image="x",
    )


class LateCreateTests(TestCase):
    def setUp(self) -> None:
        self.patch(engine_module, "LATE_CREATE_POLL", 0.01)
        self.pool = ThreadPool(1, 2, name="late-create")
        self.pool.start()
        self.addCleanup(self.pool.stop)

    def engine(self, client: StandInClient, timeout: float = 5.0) -> Engine:
        settings = EngineSettings(host="unix:///nonexistent", timeout=timeout)
        return Engine(reactor, self.pool, client, settings)  # type: ignore[arg-type]

    async def test_timed_out_create_found(self) -> None:
        """A create that timed out but happened is found by its label and is the result."""
        client = StandInClient(
            requests.exceptions.ReadTimeout("read timed out"), created=True, visible_after=2
        )
        container_id = await self.engine(client).create_container(create_request())
        self.assertEqual(container_id, "late-container")
        self.assertEqual(len(client.labels[LABEL_CREATE]), 32)
        self.assertEqual(client.labels["containerssh_connection_id"], "c1")
        self.assertEqual(client.listings, 4)

    async def test_timed_out_create_that_never_happened(self) -> None:
        """If no container turns up within the HTTP timeout, the create's error stands."""
        client = StandInClient(requests.exceptions.ReadTimeout("read timed out"), created=False)
        with self.assertRaises(EngineError) as raised:
            await self.engine(client, timeout=0.2).create_container(create_request())
        self.assertIn("read timed out", raised.exception.message)
        self.assertGreater(client.listings, 2)

    async def test_engine_refusal_not_searched(self) -> None:
        """An answer from the engine means nothing was created: no search, the error at once."""
        response = requests.Response()
        response.status_code = 400
        client = StandInClient(
            docker.errors.APIError("bad request", response, "invalid reference"), created=False
        )
        with self.assertRaises(EngineError) as raised:
            await self.engine(client).create_container(create_request())
        self.assertEqual(raised.exception.status, 400)
        self.assertEqual(client.listings, 0)

    async def test_engine_unreachable_not_searched(self) -> None:
        """A request that never reached the engine (connection refused) created nothing."""
        refused = requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", ConnectionRefusedError(111, "Connection refused")
            )
        )
        client = StandInClient(refused, created=False)
        with self.assertRaises(EngineError) as raised:
            await self.engine(client).create_container(create_request())
        self.assertTrue(raised.exception.unsent)
        self.assertEqual(client.listings, 0)

    def test_unsent_from_docker_py(self) -> None:
        """docker-py's own errors for a missing socket and a closed port count as unsent."""
        directory = self.mktemp()
        os.makedirs(directory)
        for base_url in (f"unix://{directory}/missing.sock", "tcp://127.0.0.1:1"):
            client = docker.APIClient(base_url=base_url, version="1.41", timeout=5)
            self.addCleanup(client.close)
            with self.assertRaises(EngineError) as raised:
                engine_module.thd_list_labelled(client, "a", "b")
            self.assertTrue(raised.exception.unsent, base_url)

    async def test_real_engine_timeout(self) -> None:
        """Against the real engine, a create that outlives its HTTP timeout is still returned.

        The client's timeout is far shorter than the engine takes to create a
        container, so the call itself fails; the container it made is what
        comes back, labelled as asked, and it is removed here.
        """
        checker = docker_client()
        # An explicit version: "auto" would ask the engine, within the same timeout.
        client = docker.APIClient(base_url=DOCKER_HOST, version=checker.api_version, timeout=0.001)
        self.addCleanup(client.close)
        settings = EngineSettings(host=DOCKER_HOST, timeout=30.0)
        engine = Engine(reactor, self.pool, client, settings)
        request = CreateRequest(
            body={"Image": GUEST_IMAGE, "Cmd": ["true"], "Labels": {"late-create-test": "1"}},
            name=None,
            platform=None,
            image=GUEST_IMAGE,
        )
        # The listing must not time out as the create did.
        listings: list[str] = []
        self.patch(engine_module, "thd_list_labelled", _list_with(checker, listings))
        container_id = await engine.create_container(request)
        self.addCleanup(lambda: deferToThread(checker.remove_container, container_id, force=True))
        info = await deferToThread(checker.inspect_container, container_id)
        self.assertEqual(info["Config"]["Labels"]["late-create-test"], "1")
        self.assertIn(LABEL_CREATE, info["Config"]["Labels"])
        # Found by its label: the create call itself had failed.
        self.assertEqual(listings[0], info["Config"]["Labels"][LABEL_CREATE])


def _list_with(checker: Any, listings: list[str]) -> Any:
    """``thd_list_labelled`` through ``checker`` (a client with an ordinary timeout)."""
    real = engine_module.thd_list_labelled

    def thd_list_labelled(client: Any, label: str, value: str) -> list[str]:
        listings.append(value)
        return real(checker, label, value)

    return thd_list_labelled
