"""The errors of the Kubernetes client layer, each carrying the code of its situation.

A control call that fails raises :class:`KubernetesError` with the message
code of what was being done (creating a pod: ``KUBERNETES_POD_CREATE_FAILED``,
waiting for it: ``KUBERNETES_POD_WAIT_FAILED``, ...), the API server's status
and reason when it answered, and the server's own message as the operator's
explanation. The user only ever sees the generic message.
"""

from __future__ import annotations

import json
from typing import Any

from conch_container import messages
from conch_container.codes import MessageCode
from conch_container.errors import GENERIC_USER_MESSAGE, ContainerSSHError

#: The most of an error answer's body that is kept for the explanation.
MAX_ERROR_TEXT = 1024


class KubernetesError(ContainerSSHError):
    """A call to the Kubernetes API failed.

    :ivar status: the HTTP status of the API server's answer, None if there was none.
    :ivar reason: the ``reason`` of the server's ``Status`` object (``NotFound``,
        ``AlreadyExists``, ``Forbidden``...), or ``""``.
    :ivar certificate_refused: no answer because the API server's certificate
        failed verification (a setting to fix, not a passing trouble).
    """

    def __init__(
        self,
        code: MessageCode,
        explanation: str,
        *,
        status: int | None = None,
        reason: str = "",
        user_message: str = GENERIC_USER_MESSAGE,
        certificate_refused: bool = False,
        **details: Any,
    ) -> None:
        if status is not None:
            details.setdefault("status", status)
        super().__init__(code, user_message, explanation, **details)
        self.status = status
        self.reason = reason
        self.certificate_refused = certificate_refused

    @property
    def not_found(self) -> bool:
        """The API server answered 404: no such pod (or namespace)."""
        return self.status == 404


class ImagePullFailed(KubernetesError):
    """The cluster cannot pull a container's image; waiting longer would not help."""

    def __init__(self, explanation: str, **details: Any) -> None:
        super().__init__(messages.KUBERNETES_IMAGE_PULL_FAILED, explanation, **details)


class ClusterConfigError(KubernetesError):
    """The connection settings cannot be used; the explanation names the key path."""

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(messages.KUBERNETES_CONFIG_ERROR, f"{key_path}: {problem}")
        self.key_path = key_path


def status_error(code: MessageCode, status: int, body: bytes, what: str) -> KubernetesError:
    """The error for an answer with HTTP ``status`` and ``body`` (a ``Status`` object, usually)."""
    reason = ""
    text = body[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        reason = str(document.get("reason") or "")
        text = str(document.get("message") or text)[:MAX_ERROR_TEXT]
    explanation = f"{what}: HTTP {status}" + (f" {reason}" if reason else "")
    if text:
        explanation += f": {text}"
    return KubernetesError(code, explanation, status=status, reason=reason)
