"""Shared pieces of the Docker backend tests: configs, contexts and engine checks."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

import tests.docker_support
from conch_container.backend.docker import DockerBackend
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.config import AppConfig, parse_config
from conch_container.errors import ContainerSSHError
from conch_container.interfaces import ConnectionContext, ProgramRequest
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, MetadataValue, new_connection_id
from conch_container.testing.sessionio import RecordingSessionIO

#: The guest image the tests run (busybox sh, bash, tput, sftp-server; no agent).
GUEST_IMAGE = tests.docker_support.GUEST_IMAGE
#: Sleeps until told to stop; the image has no guest agent to idle with.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
DOCKER_HOST = tests.docker_support.DOCKER_HOST


def docker_config_data(**execution: Any) -> dict[str, Any]:
    """A ``docker`` section for the guest image, agent disabled, never pulling."""
    values: dict[str, Any] = {
        "container": {"image": GUEST_IMAGE},
        "idleCommand": IDLE_COMMAND,
        "shellCommand": ["/bin/sh"],
        "disableAgent": True,
        "imagePullPolicy": "Never",
        "subsystems": {"sftp": "/usr/lib/openssh/sftp-server"},
    }
    values.update(execution)
    return {
        "connection": {"host": DOCKER_HOST},
        "execution": values,
        "timeouts": {
            "containerStart": "30s",
            "containerStop": "30s",
            "commandStart": "30s",
            "signal": "10s",
            "window": "10s",
            "http": "15s",
        },
    }


def make_config(
    timeouts: dict[str, Any] | None = None,
    connection: dict[str, Any] | None = None,
    **execution: Any,
) -> AppConfig:
    """A whole configuration whose ``docker`` section is :func:`docker_config_data`."""
    docker = docker_config_data(**execution)
    docker["timeouts"].update(timeouts or {})
    docker["connection"].update(connection or {})
    return parse_config({"backend": "docker", "docker": docker})


def make_context(
    config: AppConfig,
    log: CodeLogger,
    *,
    environment: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    files: dict[str, bytes] | None = None,
) -> ConnectionContext:
    """A context for user ``alice`` from 127.0.0.1."""
    from conch_container.metadata import FileValue

    meta = ConnectionMetadata(
        connection_id=new_connection_id(),
        remote_address="127.0.0.1:40022",
        username="alice",
        authenticated_username="alice",
        environment={k: MetadataValue(v) for k, v in (environment or {}).items()},
        metadata={k: MetadataValue(v) for k, v in (metadata or {}).items()},
        files={k: FileValue(v) for k, v in (files or {}).items()},
    )
    return ConnectionContext(metadata=meta, config=config, log=log)


def new_instance_id() -> str:
    return "test-" + uuid.uuid4().hex


def docker_client() -> Any:
    """A plain docker-py client for checking the engine from the tests (skip or fail without)."""
    return tests.docker_support.docker_client()


def labelled_containers(client: Any, instance_id: str) -> Deferred[list[dict[str, Any]]]:
    """The containers carrying the instance label (checked in a thread)."""
    return deferToThread(
        client.containers, all=True, filters={"label": f"{LABEL_INSTANCE}={instance_id}"}
    )


def force_remove(client: Any, ids: list[str]) -> Deferred[None]:
    def thd_remove() -> None:
        for container_id in ids:
            try:
                client.remove_container(container_id, force=True, v=True)
            except Exception:
                pass

    return deferToThread(thd_remove)


def reactor() -> Any:
    return global_reactor


if TYPE_CHECKING:
    _TestCaseBase = TestCase
else:
    _TestCaseBase = object


class DockerBackendFixture(_TestCaseBase):
    """A started :class:`DockerBackend` with its own instance id and captured log events.

    Mixed into a :class:`TestCase` (see :class:`DockerBackendTestCase`); a class
    that is itself only a template of cases mixes this in without the test case,
    so that it is not collected on its own. After each test the backend stops,
    then no container carrying the instance id may be left.
    """

    timeout = 120
    #: The namespace of the test's logger.
    log_namespace = "tests.backend.docker"
    #: The backend's pool size and the interval between its retries.
    max_threads = 6
    retry_interval = 0.2
    #: What :meth:`new_backend` builds.
    backend_type: ClassVar[type[DockerBackend]] = DockerBackend

    def setUp(self) -> Any:
        self.client = docker_client()
        self.instance_id = new_instance_id()
        self.events = EventLoggingObserver()
        self.log = CodeLogger(self.log_namespace, observer=self.events)
        # Cleanups run last-in first-out: the backend stops, then nothing may be left.
        self.addCleanup(self.assert_no_containers)
        self.backend = self.new_backend()
        self.backend.start()
        return None

    def new_backend(self, clock: Any = None) -> DockerBackend:
        """A backend for this test's instance id, on ``clock`` (the reactor by default)."""
        backend = self.backend_type(
            clock or reactor(),
            self.log,
            instance_id=self.instance_id,
            max_threads=self.max_threads,
            retry_interval=self.retry_interval,
        )
        # Registered before any start: a pool left running would hang the test run.
        self.addCleanup(backend.stop)
        return backend

    async def containers(self) -> list[str]:
        """The ids of the containers carrying this test's instance id."""
        return [c["Id"] for c in await labelled_containers(self.client, self.instance_id)]

    async def assert_no_containers(self) -> None:
        left = await self.containers()
        if left:
            await force_remove(self.client, left)
            self.fail(f"containers left behind: {[c[:12] for c in left]}")

    def codes(self) -> list[str]:
        return [e["code"] for e in self.events if "code" in e]

    def config(self, *args: Any, **kwargs: Any) -> AppConfig:
        """The configuration of this test's connections: :func:`make_config` by default."""
        return make_config(*args, **kwargs)

    async def connect(
        self,
        *args: Any,
        backend: DockerBackend | None = None,
        environment: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        files: dict[str, bytes] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A connection with :meth:`config` of the arguments, closed after the test."""
        context = make_context(
            self.config(*args, **kwargs),
            self.log,
            environment=environment,
            metadata=metadata,
            files=files,
        )
        connection = await (backend or self.backend).connect(context)
        self.addCleanup(connection.close)
        return connection

    def open(self, connection: Any, channel_id: int = 0) -> Any:
        """A session on ``connection``, closed after the test."""
        session = connection.open_session(channel_id)
        self.addCleanup(session.close)
        return session

    async def run_program(
        self,
        command: str,
        *,
        kind: str = "exec",
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        connection: Any = None,
        **connect_args: Any,
    ) -> RecordingSessionIO:
        """Run one program to its end (on a new connection unless one is given).

        ``stdin`` is fed in 8 KiB writes, then closed; the session is closed
        once the program has exited.
        """
        if connection is None:
            connection = await self.connect(**connect_args)
        session = self.open(connection)
        for name, value in (env or {}).items():
            session.set_env(name, value)
        io = RecordingSessionIO()
        await session.start(ProgramRequest(kind, command), io)  # type: ignore[arg-type]
        if stdin is not None:
            view = memoryview(stdin)
            for offset in range(0, len(stdin), 8192):
                session.write(bytes(view[offset : offset + 8192]))
            session.close_stdin()
        await io.when_exited()
        await session.close()
        return io

    async def connect_fails(self, *args: Any, **kwargs: Any) -> ContainerSSHError:
        """Connect, expecting a failure that leaves no container behind."""
        with self.assertRaises(ContainerSSHError) as caught:
            await self.backend.connect(make_context(self.config(*args, **kwargs), self.log))
        self.assertEqual(await labelled_containers(self.client, self.instance_id), [])
        return caught.exception


class DockerBackendTestCase(DockerBackendFixture, TestCase):
    """:class:`DockerBackendFixture` as a test case."""
