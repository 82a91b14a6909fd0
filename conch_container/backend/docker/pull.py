"""Image pull decisions, image names and registry credentials (pure functions).

``imagePullPolicy`` (reference section 6.2):

* ``Never``: never pull; a missing image makes container creation fail;
* ``Always``: pull before every container;
* ``IfNotPresent`` (the default): inspect the image, pull only when the engine
  says it does not exist (no special case for ``:latest``, as in ContainerSSH 0.6).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

#: The keys of Docker's ``AuthConfig`` (``X-Registry-Auth``), all lower case on the wire.
REGISTRY_AUTH_KEYS = (
    "username",
    "password",
    "auth",
    "email",
    "serveraddress",
    "identitytoken",
    "registrytoken",
)

_DEFAULT_REGISTRY = "docker.io"


class PullPolicy(enum.Enum):
    """``docker.execution.imagePullPolicy``."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"

    @classmethod
    def parse(cls, value: str | None) -> PullPolicy:
        """The policy for a config value; empty means ``IfNotPresent``.

        :raises ValueError: for an unknown value.
        """
        if not value:
            return cls.IF_NOT_PRESENT
        for policy in cls:
            if policy.value == value:
                return policy
        raise ValueError(f"invalid image pull policy {value!r}")

    @property
    def needs_inspect(self) -> bool:
        """Whether the decision needs to know if the image is present."""
        return self is PullPolicy.IF_NOT_PRESENT

    def should_pull(self, present: bool | None = None) -> bool:
        """Whether to pull, given (for ``IfNotPresent``) whether the image is present."""
        if self is PullPolicy.ALWAYS:
            return True
        if self is PullPolicy.NEVER:
            return False
        if present is None:
            raise ValueError("IfNotPresent needs to know whether the image is present")
        return not present


def canonical_image_name(image: str) -> str:
    """The fully qualified name the engine pulls: ``foo`` is ``docker.io/library/foo``.

    A first path component containing ``.`` or ``:`` or equal to ``localhost``
    names a registry and is kept.
    """
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return image
    if not sep:
        return f"{_DEFAULT_REGISTRY}/library/{image}"
    return f"{_DEFAULT_REGISTRY}/{image}"


def registry_auth(raw: Mapping[str, object] | None) -> dict[str, str]:
    """``execution.auth`` as the ``X-Registry-Auth`` JSON object.

    Keys are matched case-insensitively (the config may be YAML or JSON); empty
    values are left out. No configured credentials give an empty object, so the
    engine pulls anonymously: the gateway host's own Docker credentials are
    never used.
    """
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        name = str(key).lower()
        if name in REGISTRY_AUTH_KEYS and value not in (None, ""):
            out[name] = str(value)
    return out


_PERMANENT_PULL_ERROR = re.compile(
    r"unauthorized|authentication required|access( to the resource)? (is )?denied|"
    r"denied:|not found|manifest unknown|does not exist|invalid reference format|"
    r"repository name must",
    re.IGNORECASE,
)


def is_permanent_pull_error(status: int | None, message: str) -> bool:
    """Whether retrying a failed pull is pointless (unauthorised, forbidden, not found)."""
    if status in (400, 401, 403, 404):
        return True
    return bool(_PERMANENT_PULL_ERROR.search(message))
