"""Image pull decisions, image names, registry credentials and pull errors (pure functions).

``imagePullPolicy`` (reference section 6.2):

* ``Never``: never pull; a missing image makes container creation fail;
* ``Always``: pull before every container;
* ``IfNotPresent`` (the default): inspect the image, pull only when the engine
  says it does not exist (no special case for ``:latest``, as in ContainerSSH 0.6).

A failed pull is classified from the engine's answer: refused credentials, a
missing image and a malformed name are permanent (retrying cannot help), the
rest (network, registry trouble) is retried. The engine reports a registry's
refusal with HTTP 500 and the registry's words, so the words decide.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping

from conch_container.errors import GENERIC_USER_MESSAGE

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

    The engine ignores ``auth`` (the ``base64(username:password)`` form of
    ``~/.docker/config.json``; the Docker CLI splits it before sending), so it
    is split here too when ``username`` and ``password`` are not given.
    """
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        name = str(key).lower()
        if name in REGISTRY_AUTH_KEYS and value not in (None, ""):
            out[name] = str(value)
    if "auth" in out and "username" not in out and "password" not in out:
        split = _split_auth(out["auth"])
        if split is not None:
            out["username"], out["password"] = split
    return out


def _split_auth(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    return username, password


class PullFailure(enum.Enum):
    """Why a pull failed, as far as the engine's answer tells."""

    #: The registry refused the credentials (or their absence).
    UNAUTHORIZED = "unauthorized"
    #: The registry has no such image (or tag, or platform).
    NOT_FOUND = "not found"
    #: The image name cannot be pulled at all.
    INVALID = "invalid"
    #: Anything else: network, engine or registry trouble that may pass.
    TRANSIENT = "transient"

    @property
    def permanent(self) -> bool:
        """Whether retrying the pull is pointless."""
        return self is not PullFailure.TRANSIENT

    @property
    def user_message(self) -> str:
        """What the SSH user may read (never the engine's or the registry's words)."""
        return _USER_MESSAGES[self]


_USER_MESSAGES = {
    PullFailure.UNAUTHORIZED: (
        "Failed to initialize SSH session: the registry refused access to the container image."
    ),
    PullFailure.NOT_FOUND: (
        "Failed to initialize SSH session: the container image was not found in its registry."
    ),
    PullFailure.INVALID: "Failed to initialize SSH session: the container image name is invalid.",
    PullFailure.TRANSIENT: GENERIC_USER_MESSAGE,
}

#: What the user reads when ``Never`` (or a vanished image) leaves no image to create from.
MISSING_IMAGE_USER_MESSAGE = (
    "Failed to initialize SSH session: the container image is not available on the Docker host."
)

# The engine's and registries' words, checked in this order: Docker Hub answers
# "pull access denied ..., repository does not exist or may require 'docker
# login'" both for a private and for a missing repository.
_UNAUTHORIZED = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|incorrect username|"
    # "permission denied" is the engine's own file system, not the registry.
    r"(?<!permission )\bdenied\b|forbidden",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"manifest unknown|not found|does not exist|name unknown|no such image|"
    r"no matching manifest",
    re.IGNORECASE,
)
_INVALID = re.compile(
    r"invalid reference format|repository name must|invalid tag format|invalid platform",
    re.IGNORECASE,
)
_MISSING_IMAGE = re.compile(r"no such image", re.IGNORECASE)


def classify_pull_error(status: int | None, message: str) -> PullFailure:
    """Classify a failed pull from the engine's HTTP status and explanation.

    :param status: the HTTP status of the engine's answer; ``None`` for an
        error reported inside the progress stream of a pull that had started.
    :param message: the engine's explanation.
    """
    if status in (401, 403) or _UNAUTHORIZED.search(message):
        return PullFailure.UNAUTHORIZED
    if status == 404 or _NOT_FOUND.search(message):
        return PullFailure.NOT_FOUND
    if status == 400 or _INVALID.search(message):
        return PullFailure.INVALID
    return PullFailure.TRANSIENT


def is_permanent_pull_error(status: int | None, message: str) -> bool:
    """Whether retrying a failed pull is pointless (unauthorised, forbidden, not found)."""
    return classify_pull_error(status, message).permanent


def is_missing_image_error(status: int | None, message: str) -> bool:
    """Whether a container create failed because the engine does not have the image."""
    return status == 404 and bool(_MISSING_IMAGE.search(message))
