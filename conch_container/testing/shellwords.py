"""Splitting and expanding command lines for the fake backend's shell.

Enough of ``sh`` for tests: words with single and double quotes, backslash
escapes, ``$VAR``/``${VAR}``/``$?`` expansion (unquoted values split on
whitespace), ``;``, ``&&``, ``||`` and ``#`` comments. Pipes, redirections and
subshells are syntax errors.
"""

from __future__ import annotations


class ShellSyntaxError(ValueError):
    """The line cannot be parsed."""


# A word is a list of parts: (text, is_variable, quoted).
_Part = tuple[str, bool, bool]
_Command = tuple[str, list[list[_Part]]]

_OPERATORS = {";": ";", "&&": "&&", "||": "||"}
_UNSUPPORTED = set("|&<>`(){}")


def _variable(line: str, i: int) -> tuple[str | None, int]:
    """Parse the variable after ``$`` at ``line[i]``; None when ``$`` is literal."""
    if i < len(line) and line[i] == "{":
        end = line.find("}", i)
        if end < 0:
            raise ShellSyntaxError("missing }")
        return line[i + 1 : end], end + 1
    if i < len(line) and line[i] == "?":
        return "?", i + 1
    start = i
    while i < len(line) and (line[i].isalnum() or line[i] == "_"):
        i += 1
    if i == start:
        return None, i
    return line[start:i], i


def parse(line: str) -> list[_Command]:
    """Split a command line into ``(connector, words)`` pairs.

    The connector says when the command runs: ``;`` always, ``&&`` after
    success, ``||`` after failure.
    """
    commands: list[_Command] = []
    words: list[list[_Part]] = []
    word: list[_Part] | None = None
    connector = ";"
    i = 0
    n = len(line)

    def add(part: _Part) -> None:
        nonlocal word
        if word is None:
            word = []
            words.append(word)
        word.append(part)

    while i < n:
        c = line[i]
        if c in " \t\r\n":
            word = None
            i += 1
        elif c == "#" and word is None:
            break
        elif line.startswith("&&", i) or line.startswith("||", i) or c == ";":
            op = line[i : i + 2] if c in "&|" else c
            if words:
                commands.append((connector, words))
            elif op != ";" or commands:
                raise ShellSyntaxError(f"syntax error near unexpected token `{op}'")
            words, word, connector = [], None, _OPERATORS[op]
            i += len(op)
        elif c in _UNSUPPORTED:
            raise ShellSyntaxError(f"unsupported syntax: {c}")
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            add((line[i + 1 : end], False, True))
            i = end + 1
        elif c == '"':
            i += 1
            add(("", False, True))
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`':
                    add((line[i + 1], False, True))
                    i += 2
                elif c == "$":
                    name, i = _variable(line, i + 1)
                    add((name, True, True) if name is not None else ("$", False, True))
                else:
                    add((c, False, True))
                    i += 1
        elif c == "\\":
            if i + 1 < n:
                add((line[i + 1], False, True))
            i += 2
        elif c == "$":
            name, i = _variable(line, i + 1)
            add((name, True, False) if name is not None else ("$", False, False))
        else:
            add((c, False, False))
            i += 1
    if words:
        commands.append((connector, words))
    elif commands and connector != ";":
        raise ShellSyntaxError("syntax error: unexpected end of line")
    return commands


def expand(word: list[_Part], env: dict[str, str], status: int) -> list[str]:
    """The fields a word expands to (unquoted variables are split on whitespace)."""
    fields: list[str] = []
    current = ""
    keep = False
    for text, is_variable, quoted in word:
        value = (str(status) if text == "?" else env.get(text, "")) if is_variable else text
        if quoted or not is_variable:
            current += value
            keep = keep or quoted or bool(value)
            continue
        pieces = value.split()
        if not pieces:
            continue
        if value[:1].isspace() and (current or keep):
            fields.append(current)
            current, keep = "", False
        current += pieces[0]
        for piece in pieces[1:]:
            fields.append(current)
            current = piece
        keep = True
        if value[-1:].isspace():
            fields.append(current)
            current, keep = "", False
    if current or keep:
        fields.append(current)
    return fields
