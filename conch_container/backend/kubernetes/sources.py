"""Which source the connection settings come from: :func:`thd_resolve`.

A kubeconfig file if ``kubernetes.connection.kubeconfig`` is set; else
in-cluster discovery, if the connection keys are left at their defaults and
the gateway runs in a pod; else the ContainerSSH keys (see
:mod:`.connection`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from conch_container.backend.kubernetes.connection import (
    SERVICE_ACCOUNT_DIR,
    ClusterSettings,
    is_default_connection,
    thd_explicit,
    thd_in_cluster,
)
from conch_container.backend.kubernetes.kubeconfig import thd_from_kubeconfig
from conch_container.config.kubernetes import KubernetesConfig


def thd_resolve(
    config: KubernetesConfig,
    *,
    environ: Mapping[str, str] | None = None,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
    key_path: str = "kubernetes.connection",
) -> ClusterSettings:
    """The settings of ``config``'s connection (blocking: reads files).

    :param environ: the process environment (``os.environ`` if None).
    :raises ClusterConfigError: naming the key at fault.
    """
    connection = config.connection
    timeout = float(config.timeouts.http)
    if connection.kubeconfig:
        return thd_from_kubeconfig(connection, timeout, key_path)
    if is_default_connection(connection):
        found = thd_in_cluster(
            connection,
            os.environ if environ is None else environ,
            service_account_dir,
            timeout,
            key_path,
        )
        if found is not None:
            return found
    return thd_explicit(connection, timeout, key_path)
