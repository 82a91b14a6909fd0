"""From a loaded ``docker.execution`` to the exact ``POST /containers/create`` request.

Pure functions, no I/O. The configuration holds the container, host, network
and platform settings already checked and in Engine API JSON (see
:mod:`conch_container.config.dockerapi`); here they are put together with
what belongs to one connection: ``Cmd`` replaced by ``idleCommand``, the
connection's labels added and the authentication environment appended to
``Env``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from conch_container.config.dockerkinds import platform_parameter
from conch_container.envnames import check_variables

if TYPE_CHECKING:
    from conch_container.config import DockerExecutionConfig

#: The labels ContainerSSH puts on every container (reference section 6.1).
LABEL_CONNECTION_ID = "containerssh_connection_id"
LABEL_IP = "containerssh_ip"
LABEL_USERNAME = "containerssh_username"
#: Our own label: which gateway instance owns the container, for clean-up.
LABEL_INSTANCE = "conch_container_instance"
#: Our own label: a token unique to one create call, to find its container
#: when the call timed out but the engine may have created it all the same.
LABEL_CREATE = "conch_container_create"


class ContainerConfigError(ValueError):
    """The Docker configuration cannot make a container.

    Loading the configuration refuses such a one; this is raised for an
    ``execution`` section built some other way.

    :ivar path: where, e.g. ``docker.execution.container.image``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@attrs.frozen
class CreateRequest:
    """Everything ``POST /containers/create`` needs.

    :ivar body: the JSON body, ``HostConfig`` and ``NetworkingConfig`` included.
    :ivar name: the ``name`` query parameter, or ``None`` for a generated name.
    :ivar platform: the ``platform`` query parameter (``os/arch[/variant]``) or ``None``.
    :ivar image: the image reference, as configured.
    """

    body: dict[str, Any]
    name: str | None
    platform: str | None
    image: str


def merge_env(base: Iterable[str], extra: Iterable[tuple[str, str]]) -> list[str]:
    """``base`` (``NAME=value`` strings) with ``extra`` added; a later name replaces an earlier one.

    Docker keeps duplicate names and the C library then finds the first, so the
    list is de-duplicated here, keeping the first position of each name.

    ``base`` is the operator's configured ``Env``; every variable in ``extra``
    has been checked where it arrived, and is checked once more here, where it
    becomes the string the engine splits at its first ``=``: a name with an
    ``=`` in it must never get that far.

    :raises ~conch_container.envnames.InvalidVariable: for a variable in
        ``extra`` no program can be given.
    """
    added = list(extra)
    check_variables(added)
    merged: dict[str, str] = {}
    for entry in base:
        merged[entry.partition("=")[0]] = entry
    for name, value in added:
        merged[name] = f"{name}={value}"
    return list(merged.values())


def execution_create_request(
    execution: DockerExecutionConfig,
    *,
    labels: Mapping[str, str],
    env: Iterable[tuple[str, str]],
    path: str = "docker.execution",
) -> CreateRequest:
    """The connection-mode container request for a loaded ``docker.execution`` section.

    :param labels: added to (and overriding) the configured labels.
    :param env: ``(name, value)`` pairs appended to the configured ``Env``.
    :raises ContainerConfigError: when the container has no image.
    :raises ~conch_container.envnames.InvalidVariable: for a variable in ``env``
        no program can be given (see :func:`merge_env`).
    """
    # Copies: the request is changed per connection and per session, the
    # configuration never.
    body = copy.deepcopy(execution.container)
    image = body.get("Image")
    if not isinstance(image, str) or not image.strip():
        raise ContainerConfigError(f"{path}.container.image", "an image is required")
    body["Cmd"] = list(execution.idle_command)
    body["Labels"] = {**body.get("Labels", {}), **labels}
    body["Env"] = merge_env(body.get("Env", []), env)
    if execution.host:
        body["HostConfig"] = copy.deepcopy(execution.host)
    if execution.network:
        body["NetworkingConfig"] = copy.deepcopy(execution.network)
    return CreateRequest(
        body=body,
        name=execution.containername or None,
        platform=platform_parameter(execution.platform),
        image=image,
    )
