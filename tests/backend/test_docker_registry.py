"""Image pulls by ``imagePullPolicy`` with registry credentials, against a real registry.

The guest image is pushed under a name unique to each test into a real
``docker-registry`` with password authentication (:mod:`tests.registry_support`),
and the engine pulls it from there when :class:`DockerBackend.connect` asks.
Every test checks that no container is left behind and that the registry
password appears in no log event. The last classes run the whole gateway and
the OpenSSH client, to show what a user reads.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import urllib.request
import uuid
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from conch_container import messages
from conch_container.backend.docker.pull import MISSING_IMAGE_USER_MESSAGE, PullFailure
from conch_container.codes import Level
from conch_container.errors import GENERIC_USER_MESSAGE
from conch_container.interfaces import ProgramRequest
from conch_container.testing.sessionio import RecordingSessionIO
from tests.backend.helpers import (
    GUEST_IMAGE,
    DockerBackendTestCase,
    docker_client,
    make_config,
)
from tests.integration.gateway import GatewayTestCase
from tests.registry_support import Registry, push, registry, remove_local

#: Short, so that a failure wrongly treated as transient shows up as repeated attempts.
RETRY_INTERVAL = 0.2


class RegistryPullTests(DockerBackendTestCase):
    """Pull policies and credentials against a registry that requires a password."""

    max_threads = 4
    retry_interval = RETRY_INTERVAL

    async def setUp(self) -> None:  # type: ignore[override]
        self.client = docker_client()
        self.registry: Registry = await deferToThread(registry)
        self.repository = f"{self.registry.host}/guest"
        self.tag = uuid.uuid4().hex[:16]
        self.image = f"{self.repository}:{self.tag}"
        # Cleanups run last-in first-out: the local tag goes after everything else.
        self.addCleanup(deferToThread, remove_local, self.client, self.image)
        await deferToThread(
            push, self.client, GUEST_IMAGE, self.repository, self.tag, self.registry.auth_config()
        )
        # Checked after the backend has stopped and its containers are checked.
        self.addCleanup(self.assert_password_not_logged)
        super().setUp()

    def assert_password_not_logged(self) -> None:
        for event in self.events:
            text = repr(event)
            self.assertNotIn(self.registry.password, text)
            self.assertNotIn("wrong-" + self.registry.password, text)

    # -- helpers

    def events_for(self, code: messages.MessageCode) -> list[Any]:
        return [e for e in self.events if e.get("code") == code.code]

    def remove_local_copy(self) -> Deferred[None]:
        return deferToThread(remove_local, self.client, self.image)

    def image_present(self) -> Deferred[bool]:
        def thd_present() -> bool:
            return bool(self.client.images(name=self.image, quiet=True))

        return deferToThread(thd_present)

    def config(
        self,
        policy: str,
        auth: dict[str, str] | None = None,
        image: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if auth is None:
            auth = {"username": self.registry.username, "password": self.registry.password}
        return make_config(
            container={"image": image or self.image}, imagePullPolicy=policy, auth=auth, **kwargs
        )

    async def run_echo(self, connection: Any) -> RecordingSessionIO:
        session = connection.open_session(0)
        self.addCleanup(session.close)
        recorder = RecordingSessionIO()
        await session.start(ProgramRequest("exec", 'echo "Hello world!"'), recorder)
        await recorder.when_exited()
        return recorder

    def assert_failed_once(self, code: messages.MessageCode) -> None:
        """One final failure event and no retry (a retry logs the code at debug level)."""
        failures = self.events_for(code)
        self.assertEqual(len(failures), 1, [e.get("reason") for e in failures])
        self.assertEqual(failures[0]["cs_level"], code.level)

    # -- authorised pulls

    async def test_authorised_pull_then_session(self) -> None:
        """IfNotPresent pulls a missing image with the credentials; a program runs in it."""
        await self.remove_local_copy()
        self.assertFalse(await self.image_present())
        connection = await self.connect("IfNotPresent")
        codes = self.codes()
        for code in (
            "DOCKER_IMAGE_PULL_NEEDED_CHECKING",
            "DOCKER_IMAGE_LISTING",
            "DOCKER_IMAGE_PULL",
            "DOCKER_CONTAINER_CREATE",
            "DOCKER_CONTAINER_START",
        ):
            self.assertIn(code, codes)
        self.assertNotIn("DOCKER_IMAGE_PULL_FAILED", codes)
        self.assertLess(codes.index("DOCKER_IMAGE_LISTING"), codes.index("DOCKER_IMAGE_PULL"))
        self.assertEqual(self.events_for(messages.DOCKER_IMAGE_PULL)[0]["image"], self.image)
        self.assertTrue(await self.image_present())
        recorder = await self.run_echo(connection)
        self.assertEqual(recorder.stdout_data, b"Hello world!\n")
        assert recorder.status is not None
        self.assertEqual(recorder.status.code, 0)

    async def test_auth_field(self) -> None:
        """Credentials given only as ``auth`` (base64 of user:password) work too."""
        await self.remove_local_copy()
        token = f"{self.registry.username}:{self.registry.password}"
        await self.connect("Always", auth={"auth": base64.b64encode(token.encode()).decode()})
        self.assertIn("DOCKER_IMAGE_PULL", self.codes())
        self.assertTrue(await self.image_present())

    async def test_always_pulls_present_image(self) -> None:
        """Always pulls even when the image is present, without looking it up first."""
        self.assertTrue(await self.image_present())
        await self.connect("Always")
        codes = self.codes()
        self.assertIn("DOCKER_IMAGE_PULL_NEEDED_CHECKING", codes)
        self.assertIn("DOCKER_IMAGE_PULL", codes)
        self.assertNotIn("DOCKER_IMAGE_LISTING", codes)
        self.assertNotIn("DOCKER_IMAGE_PULL_FAILED", codes)

    async def test_if_not_present_keeps_present_image(self) -> None:
        """IfNotPresent looks a present image up and does not pull it."""
        await self.connect("IfNotPresent")
        codes = self.codes()
        self.assertIn("DOCKER_IMAGE_PULL_NEEDED_CHECKING", codes)
        self.assertIn("DOCKER_IMAGE_LISTING", codes)
        self.assertNotIn("DOCKER_IMAGE_PULL", codes)

    async def test_never_present_image(self) -> None:
        """Never neither looks up nor pulls; a present image just runs."""
        connection = await self.connect("Never")
        codes = self.codes()
        self.assertIn("DOCKER_IMAGE_PULL_NEEDED_CHECKING", codes)
        self.assertNotIn("DOCKER_IMAGE_LISTING", codes)
        self.assertNotIn("DOCKER_IMAGE_PULL", codes)
        recorder = await self.run_echo(connection)
        self.assertEqual(recorder.stdout_data, b"Hello world!\n")

    # -- failures that retrying cannot fix

    async def test_wrong_password(self) -> None:
        """A refused password fails at once with a clear message, and nothing is created."""
        await self.remove_local_copy()
        error = await self.connect_fails(
            "IfNotPresent",
            auth={
                "username": self.registry.username,
                "password": "wrong-" + self.registry.password,
            },
            timeouts={"containerStart": "20s"},
        )
        self.assertEqual(error.code, messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertEqual(error.user_message, PullFailure.UNAUTHORIZED.user_message)
        self.assertIn("unauthorized", error.explanation)
        self.assertNotIn("unauthorized", error.user_message)
        self.assert_failed_once(messages.DOCKER_IMAGE_PULL_FAILED)
        codes = self.codes()
        self.assertIn("DOCKER_IMAGE_LISTING", codes)
        self.assertIn("DOCKER_IMAGE_PULL", codes)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", codes)
        self.assertFalse(await self.image_present())

    async def test_wrong_password_always(self) -> None:
        """Always with a refused password fails even though the image is present."""
        error = await self.connect_fails(
            "Always", auth={"username": self.registry.username, "password": "nope"}
        )
        self.assertEqual(error.code, messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertEqual(error.user_message, PullFailure.UNAUTHORIZED.user_message)
        self.assert_failed_once(messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())

    async def test_no_credentials(self) -> None:
        """Without credentials the pull is anonymous and refused at once."""
        await self.remove_local_copy()
        error = await self.connect_fails("Always", auth={})
        self.assertEqual(error.code, messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertEqual(error.user_message, PullFailure.UNAUTHORIZED.user_message)
        self.assertIn("no basic auth credentials", error.explanation)
        self.assert_failed_once(messages.DOCKER_IMAGE_PULL_FAILED)

    async def test_missing_tag(self) -> None:
        """A tag the registry does not have fails at once as not found."""
        error = await self.connect_fails("Always", image=f"{self.repository}:no-such-tag")
        self.assertEqual(error.code, messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertEqual(error.user_message, PullFailure.NOT_FOUND.user_message)
        self.assertIn("manifest unknown", error.explanation)
        self.assert_failed_once(messages.DOCKER_IMAGE_PULL_FAILED)

    async def test_never_missing_image(self) -> None:
        """Never with a missing image fails at once at create, with a clear message."""
        await self.remove_local_copy()
        error = await self.connect_fails("Never")
        self.assertEqual(error.code, messages.DOCKER_CONTAINER_CREATE_FAILED)
        self.assertEqual(error.user_message, MISSING_IMAGE_USER_MESSAGE)
        self.assertIn("No such image", error.explanation)
        self.assert_failed_once(messages.DOCKER_CONTAINER_CREATE_FAILED)
        codes = self.codes()
        self.assertIn("DOCKER_IMAGE_PULL_NEEDED_CHECKING", codes)
        self.assertNotIn("DOCKER_IMAGE_LISTING", codes)
        self.assertNotIn("DOCKER_IMAGE_PULL", codes)

    # -- failures that may pass

    async def test_error_inside_pull_stream(self) -> None:
        """An error the engine reports inside a started pull (HTTP 200) fails the pull.

        The registry loses the image's only layer after the push: the engine
        finds the manifest, starts answering, and then cannot download the
        layer. That is not a permanent answer, so it is retried until the
        deadline.
        """
        image = await deferToThread(self.push_unique_image_without_layer)
        self.addCleanup(deferToThread, remove_local, self.client, image)
        error = await self.connect_fails(
            "Always",
            image=image,
            timeouts={"containerStart": "3s"},
        )
        self.assertEqual(error.code, messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertEqual(error.user_message, GENERIC_USER_MESSAGE)
        failures = self.events_for(messages.DOCKER_IMAGE_PULL_FAILED)
        self.assertGreater(len(failures), 1)
        retries = [e for e in failures if e["cs_level"] == Level.DEBUG]
        self.assertTrue(retries)
        self.assertIn("unknown blob", retries[0]["reason"])
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.codes())

    def push_unique_image_without_layer(self) -> str:
        """Push a one-layer image no other image shares, then delete that layer's blob."""
        repository = f"{self.registry.host}/broken"
        tag = uuid.uuid4().hex[:16]
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as archive:
            data = os.urandom(4096)
            info = tarfile.TarInfo("random.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        self.client.import_image_from_data(layer.getvalue(), repository=repository, tag=tag)
        name = push(
            self.client, f"{repository}:{tag}", repository, tag, self.registry.auth_config()
        )
        credentials = f"{self.registry.username}:{self.registry.password}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode()
        request = urllib.request.Request(
            f"{self.registry.url}/v2/broken/manifests/{tag}",
            headers={
                "Authorization": authorization,
                "Accept": "application/vnd.docker.distribution.manifest.v2+json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            digest = json.load(response)["layers"][0]["digest"]
        request = urllib.request.Request(
            f"{self.registry.url}/v2/broken/blobs/{digest}",
            method="DELETE",
            headers={"Authorization": authorization},
        )
        urllib.request.urlopen(request, timeout=10).close()
        remove_local(self.client, name)
        return name


class _GatewayPullCase(GatewayTestCase):
    """A gateway whose image is only in the registry, configured with registry credentials."""

    #: Put before the right password in the gateway's configuration.
    password_prefix = ""

    async def setUp(self) -> None:  # type: ignore[override]
        self.registry: Registry = await deferToThread(registry)
        self.docker_check = docker_client()
        repository = f"{self.registry.host}/guest"
        tag = uuid.uuid4().hex[:16]
        self.image = f"{repository}:{tag}"
        self.addCleanup(deferToThread, remove_local, self.docker_check, self.image)
        await deferToThread(
            push, self.docker_check, GUEST_IMAGE, repository, tag, self.registry.auth_config()
        )
        await deferToThread(remove_local, self.docker_check, self.image)
        await super().setUp()

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        execution = data["docker"]["execution"]
        execution["container"] = {"image": self.image}
        execution["imagePullPolicy"] = "IfNotPresent"
        execution["auth"] = {
            "username": self.registry.username,
            "password": self.password_prefix + self.registry.password,
        }
        return data

    def assert_password_not_logged(self) -> None:
        for record in self.log_records:
            self.assertNotIn(self.registry.password, repr(record))


class GatewayPullTests(_GatewayPullCase):
    """An authorised pull through the whole gateway and ``ssh``."""

    async def test_pull_and_run(self) -> None:
        """The gateway pulls the image with its credentials and the user's command runs."""
        out, err, code = await self.ssh("echo ok")
        self.assertEqual((out, code), (b"ok\n", 0), err)
        self.assertIn("DOCKER_IMAGE_PULL", self.logged_codes())
        self.assert_password_not_logged()


class GatewayRefusedPullTests(_GatewayPullCase):
    """A refused pull through the whole gateway, as the SSH user sees it."""

    password_prefix = "wrong-"

    async def test_wrong_password_message(self) -> None:
        """The user is disconnected with the clear message, not the registry's words."""
        _out, err, code = await self.ssh("echo ok", "-o", "LogLevel=INFO")
        self.assertEqual(code, 255)
        self.assertIn(PullFailure.UNAUTHORIZED.user_message.encode(), err)
        self.assertNotIn(b"authentication required", err)
        self.assertIn("DOCKER_IMAGE_PULL_FAILED", self.logged_codes())
        self.assertNotIn("DOCKER_CONTAINER_CREATE", self.logged_codes())
        self.assert_password_not_logged()
