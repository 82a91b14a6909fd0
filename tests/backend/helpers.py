"""Shared pieces of the Docker backend tests: configs, contexts and engine checks."""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

import tests.docker_support
from conch_container.backend.docker.containerconfig import LABEL_INSTANCE
from conch_container.config import AppConfig, parse_config
from conch_container.interfaces import ConnectionContext
from conch_container.log.logger import CodeLogger
from conch_container.metadata import ConnectionMetadata, MetadataValue, new_connection_id

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
