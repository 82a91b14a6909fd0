"""Connection settings from a kubeconfig file (``kubernetes.connection.kubeconfig``).

The subset read is what a static cluster entry needs: the cluster's
``server``, ``certificate-authority`` (or ``-data``) and ``tls-server-name``;
the user's ``client-certificate``/``client-key`` (or ``-data``), ``token``,
``tokenFile`` (followed as it rotates), ``username``/``password``; the
context's ``namespace``. Relative file names are relative to the kubeconfig
file, as kubectl reads them.

Refused, naming the entry: ``exec`` and ``auth-provider`` users (they run
programs or talk to identity providers the gateway knows nothing of) and
``insecure-skip-tls-verify`` (the Kubernetes backend skips certificate
verification only for a translated ``kuberun`` section with ``allowInsecure``).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import attrs
import yaml

from conch_container.backend.kubernetes.connection import (
    ClusterSettings,
    PemMaterial,
    base_url,
    credentials_for,
    rate_of,
    read_pem,
)
from conch_container.backend.kubernetes.errors import ClusterConfigError
from conch_container.config.kubernetes import KubernetesConnectionConfig
from conch_container.config.schema import fields_of
from conch_container.config.values import is_pem

#: The most of a kubeconfig file that is read.
MAX_KUBECONFIG = 4 * 1024 * 1024


def _entry(document: dict[str, Any], kind: str, name: str, where: str) -> dict[str, Any]:
    """The body (``cluster``, ``user``, ``context``) of the ``kind`` entry called ``name``."""
    for item in document.get(f"{kind}s") or ():
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind) or {}
            if not isinstance(body, dict):
                raise ClusterConfigError(where, f"{kind} {name!r} is not a mapping")
            return body
    raise ClusterConfigError(where, f"no {kind} named {name!r}")


def _pem(body: dict[str, Any], key: str, directory: str, where: str) -> tuple[str, str]:
    """The PEM text of ``key`` (a file) or ``key-data`` (base64), and the file it came from."""
    data = body.get(f"{key}-data")
    if data:
        try:
            text = base64.b64decode(str(data), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ClusterConfigError(where, f"{key}-data is not base64 PEM") from None
        if not is_pem(text):
            raise ClusterConfigError(where, f"{key}-data is not base64 PEM")
        return text, ""
    path = body.get(key)
    if not path:
        return "", ""
    path = os.path.join(directory, str(path))
    return read_pem(path, f"{where}: {key}"), path


def _load(path: str, where: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KUBECONFIG + 1)
    except OSError as e:
        raise ClusterConfigError(where, f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_KUBECONFIG:
        raise ClusterConfigError(where, f"{path} is larger than {MAX_KUBECONFIG} bytes")
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise ClusterConfigError(where, f"{path} is not YAML: {e}") from None
    if not isinstance(document, dict):
        raise ClusterConfigError(where, f"{path} is not a kubeconfig file")
    return document


def thd_from_kubeconfig(
    connection: KubernetesConnectionConfig, timeout: float, key_path: str
) -> ClusterSettings:
    """The settings of the selected context of ``connection.kubeconfig`` (blocking).

    :raises ClusterConfigError: naming ``kubeconfig`` (and the entry at fault),
        or a ContainerSSH key set alongside it.
    """
    where = f"{key_path}.kubeconfig"
    allowed = attrs.evolve(
        KubernetesConnectionConfig(),
        qps=connection.qps,
        burst=connection.burst,
        kubeconfig=connection.kubeconfig,
        context=connection.context,
    )
    changed = _changed_key(connection, allowed)
    if changed:
        raise ClusterConfigError(f"{key_path}.{changed}", "not allowed with kubeconfig")
    path = connection.kubeconfig
    document = _load(path, where)
    directory = os.path.dirname(os.path.abspath(path))
    context_name = connection.context or str(document.get("current-context") or "")
    if not context_name:
        raise ClusterConfigError(f"{key_path}.context", f"{path} has no current-context")
    context_where = f"{key_path}.context" if connection.context else where
    context = _entry(document, "context", context_name, context_where)
    cluster_name = str(context.get("cluster") or "")
    cluster = _entry(document, "cluster", cluster_name, f"{where}: context {context_name!r}")
    user_name = str(context.get("user") or "")
    user = _entry(document, "user", user_name, where) if user_name else {}
    cluster_where = f"{where}: cluster {cluster_name!r}"
    user_where = f"{where}: user {user_name!r}"
    if cluster.get("insecure-skip-tls-verify"):
        raise ClusterConfigError(cluster_where, "insecure-skip-tls-verify is not supported")
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise ClusterConfigError(user_where, f"{unsupported} users are not supported")
    server = str(cluster.get("server") or "")
    if not server:
        raise ClusterConfigError(cluster_where, "no server")
    ca_pem, ca_file = _pem(cluster, "certificate-authority", directory, cluster_where)
    cert_pem, cert_file = _pem(user, "client-certificate", directory, user_where)
    key_pem, key_file = _pem(user, "client-key", directory, user_where)
    if bool(cert_pem) != bool(key_pem):
        raise ClusterConfigError(user_where, "client-certificate and client-key go together")
    token_file = str(user.get("tokenFile") or "")
    if token_file:
        token_file = os.path.join(directory, token_file)
    credentials = credentials_for(
        user_where,
        token=str(user.get("token") or ""),
        token_file="" if user.get("token") else token_file,
        username=str(user.get("username") or ""),
        password=str(user.get("password") or ""),
    )
    server_name = str(cluster.get("tls-server-name") or "")
    return ClusterSettings(
        # A kubeconfig server is a URL whose path is the API prefix (kubectl).
        base_url=base_url(server, "/api", tls_default=True, key_path=cluster_where),
        credentials=credentials,
        server_name=server_name,
        pem=PemMaterial(ca_pem, cert_pem, key_pem, ca_file, cert_file, key_file),
        namespace=str(context.get("namespace") or ""),
        timeout=timeout,
        **rate_of(connection),
    )


def _changed_key(
    connection: KubernetesConnectionConfig, reference: KubernetesConnectionConfig
) -> str:
    """The key of the first setting of ``connection`` that differs from ``reference``, or ``""``."""
    for attribute, setting in fields_of(KubernetesConnectionConfig):
        if getattr(connection, attribute.name) != getattr(reference, attribute.name):
            return setting.key
    return ""
