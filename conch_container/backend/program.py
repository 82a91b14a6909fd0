"""What to run for a ``shell``, ``exec`` or ``subsystem`` request, as an argv.

Every container backend turns a :class:`~conch_container.interfaces.ProgramRequest`
into an argument vector the same way (reference section 5.3):

* ``shell`` runs ``shellCommand``;
* ``subsystem`` runs ``[<binary>]`` from ``subsystems``;
* ``exec`` runs the words of the command directly when the command is a plain
  list of words whose first word is a path (``/...``, ``./...``, ``../...``),
  and ``["/bin/sh", "-c", <command>]`` otherwise.

The guest agent starts programs with ``execve`` and no ``PATH`` search, which is
why a bare command name always goes through ``/bin/sh``.

ContainerSSH's splitter silently stops at the first unquoted ``;``, ``&``,
``|``, ``<`` or ``>``: ``/bin/echo a; /bin/rm b`` runs only ``/bin/echo a``.
:func:`split_plain_command` instead refuses every string in which a shell would
see more than quoted literal words (operators, expansions, globs, comments,
newlines, ...), and such a command runs through ``/bin/sh -c`` unchanged, so it
behaves exactly as it would in a shell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conch_container.interfaces import ProgramRequest

#: The interpreter for anything that is not a plain list of words.
SHELL_ARGV_PREFIX = ("/bin/sh", "-c")

#: A first word starting with one of these is run without a shell.
_PATH_PREFIXES = ("/", "./", "../")

#: Unquoted characters that separate words (POSIX "blank"; a newline separates commands).
_BLANKS = frozenset(" \t")

#: Unquoted characters a shell may interpret: operators, expansions, globs,
#: grouping, comments, tilde and history expansion, and every control character
#: (a newline ends a command). Some are special only in some positions or some
#: shells (``#`` and ``~`` at a word start, ``{}`` in bash, ``^`` in the Bourne
#: shell); refusing them everywhere costs nothing, because a refused string
#: still runs, through the shell.
_SHELL_SPECIAL = frozenset("|&;<>()$`*?[]{}!#~^") | frozenset(chr(c) for c in (*range(0x20), 0x7F))

#: Inside double quotes a backslash escapes only these (POSIX 2.2.3).
_DQUOTE_ESCAPABLE = frozenset('$`"\\\n')


class UnknownSubsystem(LookupError):
    """The client asked for a subsystem the configuration does not name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def split_plain_command(command: str) -> list[str] | None:
    """Split ``command`` into words if a POSIX shell would see only literal words.

    Quoting follows the shell: single quotes keep everything literally, double
    quotes keep everything but ``\\`` escapes of ``$ ` " \\`` and newline, and an
    unquoted backslash makes the next character literal (a backslash-newline
    pair disappears). There is no expansion of any kind.

    :return: the words, or ``None`` when the string contains anything a shell
        would interpret (an unquoted operator, ``$``, backquote, glob, comment,
        tilde, control character...), an unterminated quote, a trailing
        backslash, or a NUL byte; such a string must be given to a shell.
    """
    if "\0" in command:
        return None
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    n = len(command)
    while i < n:
        c = command[i]
        if c in _BLANKS:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
            i += 1
        elif c == "'":
            end = command.find("'", i + 1)
            if end < 0:
                return None
            current.append(command[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    return None
                c = command[i]
                if c == '"':
                    i += 1
                    break
                if c in "$`":
                    return None
                if c == "\\" and i + 1 < n and command[i + 1] in _DQUOTE_ESCAPABLE:
                    if command[i + 1] != "\n":
                        current.append(command[i + 1])
                    i += 2
                    continue
                current.append(c)
                i += 1
            in_word = True
        elif c == "\\":
            if i + 1 >= n:
                return None
            if command[i + 1] != "\n":
                current.append(command[i + 1])
                in_word = True
            i += 2
        elif c in _SHELL_SPECIAL:
            return None
        else:
            current.append(c)
            in_word = True
            i += 1
    if in_word:
        words.append("".join(current))
    return words


def exec_argv(command: str) -> list[str]:
    """The argv for an ``exec`` request (see the module documentation)."""
    words = split_plain_command(command)
    if words and words[0].startswith(_PATH_PREFIXES):
        return words
    return [*SHELL_ARGV_PREFIX, command]


def program_argv(
    request: ProgramRequest,
    *,
    shell_command: Sequence[str],
    subsystems: Mapping[str, str],
) -> list[str]:
    """The argv that runs ``request`` in a container.

    :param shell_command: the configured ``shellCommand``.
    :param subsystems: the configured ``subsystems`` (name to binary path).
    :raises UnknownSubsystem: for a subsystem name that is not configured; the
        backend reports it under its own message code.
    """
    if request.kind == "shell":
        return list(shell_command)
    if request.kind == "subsystem":
        try:
            return [subsystems[request.command]]
        except KeyError:
            raise UnknownSubsystem(request.command) from None
    return exec_argv(request.command)
