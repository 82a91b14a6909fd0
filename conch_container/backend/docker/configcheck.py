"""The Docker backend's load-time check of its configuration section.

The container, host, network and platform settings of
``docker.execution`` are free-form mappings in the configuration schema (they
follow the Docker Engine API, not ContainerSSH); they are converted to the
engine's create request with the field tables of
:mod:`~conch_container.backend.docker.apischema`. Doing that conversion once
at load means a wrong type anywhere in them is reported by
``conch-container check-config`` and stops ``twistd`` before it daemonises,
instead of failing every login with ``DOCKER_CONFIG_ERROR``; and a key the
tables do not know is warned about once, not on every connection.
"""

from __future__ import annotations

from conch_container import messages
from conch_container.backend.docker.containerconfig import (
    ContainerConfigError,
    CreateRequest,
    execution_create_request,
)
from conch_container.config import AppConfig, ConfigError, ConfigWarning


def check_docker_config(config: AppConfig) -> tuple[ConfigWarning, ...]:
    """Check ``config.docker.execution`` as a connection would use it.

    :raises ConfigError: naming the key path of the first wrong value.
    :return: a warning for each key passed through to the engine unrecognised.
    """
    request = docker_create_request(config)
    return tuple(
        ConfigWarning(
            messages.CONFIG_DOCKER_UNKNOWN_KEY,
            key,
            "not a Docker Engine API field this gateway knows; passed to the engine as it is",
        )
        for key in request.unknown_keys
    )


def docker_create_request(config: AppConfig) -> CreateRequest:
    """The create request of ``config`` with no connection's labels or environment.

    :raises ConfigError: naming the key path of the first wrong value.
    """
    try:
        return execution_create_request(config.docker.execution, labels={}, env=[])
    except ContainerConfigError as error:
        raise ConfigError(error.path, error.message) from None
