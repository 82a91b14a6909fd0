"""Which environment variables a program may be given at all.

Variables reach a container from several places: ``env`` requests from the
SSH client, the ``environment`` of the authentication (and configuration)
webhook answers, the static users file, and metadata exposed as environment.
Every one of them is checked here, with one rule:

- a name is a portable name, ``[A-Za-z_][A-Za-z0-9_]*`` (POSIX's rule for
  names the shell can use; OpenSSH only ever accepts names its ``AcceptEnv``
  patterns match);
- a value contains no NUL character.

The rule matters because a process environment is a list of ``NAME=value``
strings: whoever builds one (the Docker engine does, from the ``Env`` list)
splits each entry at its first ``=``. A name with an ``=`` in it would carry
a different name, and a value, past every check that compares whole names:
``LD_PRELOAD=/lib/x.so:`` is not ``LD_PRELOAD`` to a deny list, but it is to
the program. A NUL cannot be stored in an environment at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from conch_container import messages
from conch_container.errors import RequestRejected

#: A portable environment variable name (letters, digits, underscores; no digit first).
PORTABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: How much of a refused name is logged at most.
LOGGED_NAME_LIMIT = 64


class InvalidVariable(ValueError):
    """A variable cannot be given to a program; the message is safe to log.

    :ivar name: the name as it may be logged (see :func:`loggable_name`).
    :ivar why: why the variable is refused.
    """

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"environment variable {loggable_name(name)!r}: {why}")
        self.name = loggable_name(name)
        self.why = why


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment variable, or ``None`` if it can."""
    if not name:
        return "its name is empty"
    if "=" in name:
        return "its name contains '='"
    if "\0" in name:
        return "its name contains a NUL character"
    if PORTABLE_NAME.fullmatch(name) is None:
        return "its name is not a portable name (letters, digits and '_', no leading digit)"
    return None


def value_problem(value: str) -> str | None:
    """Why ``value`` cannot be an environment variable's value, or ``None`` if it can."""
    if "\0" in value:
        return "its value contains a NUL character"
    return None


def variable_problem(name: str, value: str) -> str | None:
    """Why ``name=value`` cannot be given to a program, or ``None`` if it can."""
    return name_problem(name) or value_problem(value)


def check_variables(variables: Iterable[tuple[str, str]]) -> None:
    """Refuse the first variable that cannot be given to a program.

    :raises InvalidVariable: naming it and saying why.
    """
    for name, value in variables:
        why = variable_problem(name, value)
        if why is not None:
            raise InvalidVariable(name, why)


def loggable_name(name: str) -> str:
    """The part of a refused name that may be logged.

    Whatever follows an ``=`` would have become the variable's value, and
    values are never logged (they may be secrets); a name may also be as long
    as the SSH packet that carried it, so it is shortened.
    """
    head = name.partition("=")[0].partition("\0")[0]
    if len(head) > LOGGED_NAME_LIMIT:
        return head[:LOGGED_NAME_LIMIT] + "..."
    return head


def env_rejection(name: str, why: str) -> RequestRejected:
    """The refusal of an ``env`` request, logged under ``SECURITY_ENV_REJECTED`` by name only.

    :param why: completes "Setting an environment variable is rejected because ...".
    """
    return RequestRejected(
        messages.SECURITY_ENV_REJECTED,
        "Environment variable setting rejected.",
        f"Setting an environment variable is rejected because {why}.",
        name=loggable_name(name),
    )
