"""Strategies the fuzz targets share: values of every YAML/JSON type, tree and text mutations."""

from __future__ import annotations

import copy
import datetime
import re
import reprlib
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from hypothesis import strategies as st

#: Integers at the edges of the ranges parsers convert to (Go int32/int64/uint64, ports, PIDs).
BOUNDARY_INTEGERS = (
    0,
    1,
    -1,
    65535,
    65536,
    2**22,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
    10**400,  # too large for a float
    -(10**400),
)

#: Strings that mean something to one parser or another.
INTERESTING_STRINGS = (
    "",
    " ",
    "0",
    "-0",
    "1",
    "-1",
    "0x1F",
    "0o17",
    "1e3",
    ".inf",
    "-.Inf",
    ".nan",
    "NaN",
    "null",
    "~",
    "true",
    "False",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "N",
    "60s",
    "1m30s",
    "1h2m3.5s",
    "100ms",
    "500\u00b5s",
    "1.5us",
    "-1s",
    "0s",
    "9223372036854775807ns",
    "9223372036854775808ns",
    "2562047h47m16.854775807s",
    "3000000h",
    "1" * 400 + "s",
    ".s",
    "1",
    "1x",
    "debug",
    "NOTICE",
    " warn ",
    "7",
    "8",
    "ljson",
    "text",
    "stdout",
    "file",
    "syslog",
    "docker",
    "kubernetes",
    "sshproxy",
    "webhook",
    "static",
    "connection",
    "session",
    "0.0.0.0:2222",
    "[::]:2222",
    "[::1]",
    ":99999",
    "host:port",
    "http://127.0.0.1:8080",
    "https://example.com/auth",
    "http://[::1",
    "http://a:99999/",
    "ftp://a/",
    "unix:///var/run/docker.sock",
    "tcp://127.0.0.1:2375",
    "SSH-2.0-ContainerSSH",
    "SSH-2.0-",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    "-----",
    "TLS_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "x25519",
    "secp256r1",
    "aes128-ctr",
    "chacha20-poly1305@openssh.com",
    "curve25519-sha256",
    "hmac-sha2-256",
    "1.2",
    "1.3",
    "Always",
    "IfNotPresent",
    "Never",
    "\u00e9\u00e8",
    "\u202e",
    "a\x00b",
    "a\nb",
    "a\r\nb",
    "\t",
    "\ufeff",
    "\ud800",
    "\U0001f600",
    "${HOME}",
    "$(id)",
    "%s%s%n",
    "../../etc/passwd",
    "C:\\x",
)

#: File names for settings that take a PEM text or a file: names relative to
#: the configuration's directory (the targets put files there), a directory,
#: names that cannot be opened. Nothing that reads forever (``/dev/zero``).
FILE_NAMES = (
    "missing-file",
    "host_key",
    "not-pem.txt",
    "not-utf8.bin",
    "empty-file",
    "a-directory",
    "/nonexistent/dir/file",
    "/",
    ".",
    "x" * 300,
    "name\x00with-nul",
    "name\ud800surrogate",
    " host_key ",
)


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``sampled_from(values)``, named by index so that failure reports stay short."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def _not_special_file(text: str) -> bool:
    """Random text is never a device or kernel file (``/dev/zero`` would read forever)."""
    return not text.strip().startswith(("/dev", "/proc", "/sys"))


texts = st.text(max_size=40).filter(_not_special_file)

#: One value of any type a YAML or JSON document can give a parser.
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    pick(BOUNDARY_INTEGERS),
    st.floats(),
    texts,
    pick(INTERESTING_STRINGS),
    pick(FILE_NAMES),
    st.binary(max_size=16),
    st.dates(),
    st.datetimes(),
)

#: Plain JSON values (what ``json.loads`` returns).
json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    pick(BOUNDARY_INTEGERS[:-2]),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    pick(INTERESTING_STRINGS),
)


def nested(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and mappings of ``leaves``, a few levels deep."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


json_values = nested(json_scalars, texts | pick(INTERESTING_STRINGS))


def deep(depth: int, leaf: Any = 0, *, as_list: bool = True) -> Any:
    """``leaf`` inside ``depth`` lists (or single-key mappings), built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


# ---------------------------------------------------------------------------
# Tree mutations


def paths(tree: Any) -> list[tuple[Any, ...]]:
    """Every position in a tree of dicts and lists, the root ``()`` first, walked iteratively."""
    found: list[tuple[Any, ...]] = [()]
    stack: list[tuple[tuple[Any, ...], Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        children: Iterator[tuple[Any, Any]]
        if isinstance(node, dict):
            children = iter(node.items())
        elif isinstance(node, list):
            children = iter(enumerate(node))
        else:
            continue
        for key, child in children:
            found.append((*path, key))
            stack.append(((*path, key), child))
    return found


def clone(tree: Any) -> Any:
    """A copy of a tree of dicts and lists, however deep (``copy.deepcopy`` recurses)."""
    if not isinstance(tree, dict | list):
        return copy.copy(tree)
    root: Any = {} if isinstance(tree, dict) else []
    stack = [(tree, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, value in items:
            if isinstance(value, dict | list):
                value_copy: Any = {} if isinstance(value, dict) else []
                stack.append((value, value_copy))
            else:
                value_copy = copy.copy(value)
            if isinstance(target, dict):
                target[key] = value_copy
            else:
                target.append(value_copy)
    return root


def get_at(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def set_at(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """``tree`` with the value at ``path`` replaced (the root itself for ``()``)."""
    if not path:
        return value
    get_at(tree, path[:-1])[path[-1]] = value
    return tree


def near_misses(key: str) -> list[str]:
    """Keys an operator might type instead of ``key``."""
    misses = [key.upper(), key.lower(), key.swapcase(), key + "s", key[:-1], " " + key, key + " "]
    if len(key) > 2:
        misses.append(key[1] + key[0] + key[2:])
    return [miss for miss in misses if miss != key]


#: The mutations, "drop" twice: dropping a key is the one that mostly leaves a document valid.
MUTATIONS = ("drop", "drop", "replace", "retype", "unknown-key", "deep", "huge", "copy", "scalar")

_SHORT = reprlib.Repr()
_SHORT.maxlevel = 4
_SHORT.maxstring = 60
_SHORT.maxother = 60


@attrs.frozen(repr=False)
class Mutated:
    """A mutated document and what was done to it.

    Its repr is short and bounded: hypothesis shows it for a failing case, and
    the repr of a value nested thousands deep would itself fail.
    """

    tree: Any
    mutations: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Mutated({list(self.mutations)!r}, tree={_SHORT.repr(self.tree)})"


@st.composite
def mutated_tree(
    draw: st.DrawFn,
    tree: Any,
    known_keys: tuple[str, ...],
    *,
    max_mutations: int = 4,
    max_depth: int = 3000,
    values: st.SearchStrategy[Any] | None = None,
    leaves: st.SearchStrategy[Any] | None = None,
    file_keys: tuple[str, ...] = (),
    within: tuple[tuple[Any, ...], ...] = (),
) -> Mutated:
    """A copy of ``tree`` with a few structural mutations, and their descriptions.

    ``values`` replace whole parts (any nested value by default), ``leaves``
    replace scalars (values of every YAML type by default).

    Mutations drop keys or items, replace values with values of any type,
    change a value's type, insert unknown (often nearly right) keys, nest a
    value ``max_depth`` deep at most, put in huge strings and lists, and copy
    one part of the document over another. A value under one of
    ``file_keys`` (settings that name files) is often set to one of
    :data:`FILE_NAMES`. With ``within``, only positions strictly below one
    of those paths are mutated (free-form parts of a document, where a
    mutation should leave it valid); the whole tree if none is there.
    """
    leaves = leaves if leaves is not None else scalars
    values = values if values is not None else nested(leaves, texts)
    tree = clone(tree)
    done: list[str] = []
    # Mostly one mutation, so that many mutated documents are still valid.
    count = draw(st.integers(1, max_mutations) | st.just(1))
    for _ in range(count):
        positions = paths(tree)
        inside = [p for p in positions if any(p[: len(w)] == w and p != w for w in within)]
        candidates = inside or positions
        path = candidates[draw(st.integers(0, len(candidates) - 1))]
        target = get_at(tree, path)
        kind = draw(st.sampled_from(MUTATIONS))
        done.append(f"{kind} at {path!r}")
        if kind == "drop":
            if path:
                parent = get_at(tree, path[:-1])
                del parent[path[-1]]
            else:
                tree = None
        elif kind == "replace":
            tree = set_at(tree, path, draw(values))
        elif kind == "retype":
            tree = set_at(tree, path, _retyped(draw, target))
        elif kind == "unknown-key":
            if isinstance(target, dict):
                choices = [*known_keys]
                for key in target:
                    if isinstance(key, str):
                        choices.extend(near_misses(key))
                key = draw(
                    st.sampled_from(choices)
                    | texts
                    | st.sampled_from([1, 0, True, None, 1.5, "", "<<"])
                )
                target[key] = draw(values)
            else:
                tree = set_at(tree, path, {draw(st.sampled_from(known_keys)): target})
        elif kind == "deep":
            depth = draw(st.integers(1, 60) | st.integers(61, max_depth))
            tree = set_at(tree, path, deep(depth, target, as_list=draw(st.booleans())))
        elif kind == "huge":
            size = draw(st.sampled_from([1_000, 70_000, 300_000]))
            shape = draw(st.sampled_from(["ascii", "unicode", "list", "mapping"]))
            huge: Any
            if shape == "ascii":
                huge = "x" * size
            elif shape == "unicode":
                huge = "\u00e9" * size
            elif shape == "list":
                huge = ["x"] * min(size, 5_000)
            else:
                huge = {f"k{i}": i for i in range(min(size, 2_000))}
            tree = set_at(tree, path, huge)
        elif kind == "copy":
            source = positions[draw(st.integers(0, len(positions) - 1))]
            tree = set_at(tree, path, clone(get_at(tree, source)))
        else:
            names_file = any(isinstance(key, str) and key in file_keys for key in path[-2:])
            tree = set_at(tree, path, draw(pick(FILE_NAMES) if names_file else leaves))
    return Mutated(tree, tuple(done))


def _retyped(draw: st.DrawFn, value: Any) -> Any:
    if isinstance(value, dict):
        return draw(
            st.sampled_from(
                # Text of the value, bounded: str() of a tree nested hundreds
                # deep would exceed the recursion limit in the strategy itself.
                [
                    list(value.values()),
                    list(value.items()),
                    list(value),
                    _SHORT.repr(value),
                    len(value),
                ]
            )
        )
    if isinstance(value, list):
        return draw(
            st.sampled_from(
                [
                    dict(enumerate(value)),
                    {"items": value},
                    ":".join(_SHORT.repr(item) for item in value),
                    len(value),
                ]
            )
        )
    if isinstance(value, bool):
        return draw(st.sampled_from([int(value), str(value).lower(), "yes" if value else "no"]))
    if isinstance(value, int | float):
        return draw(st.sampled_from([str(value), [value], {"value": value}, bool(value)]))
    if isinstance(value, str):
        options: list[Any] = [[value], {"value": value}, value.upper(), f" {value} "]
        # ASCII digits only: str.isdigit() is also true of "²", which int() refuses.
        if re.fullmatch(r"\s*-?[0-9]+\s*", value):
            options.append(int(value))
        return draw(st.sampled_from(options))
    if isinstance(value, bytes | datetime.date):
        return str(value)
    return draw(st.sampled_from([[value], {"value": value}, _SHORT.repr(value)]))


def keys_of(tree: Any) -> tuple[str, ...]:
    """Every mapping key in a tree, sorted."""
    keys = set()
    for path in paths(tree):
        if path and isinstance(path[-1], str):
            keys.add(path[-1])
    return tuple(sorted(keys))


# ---------------------------------------------------------------------------
# Text mutations

#: Pieces of YAML and JSON syntax to splice into a document.
SYNTAX_SNIPPETS = (
    "\n",
    "\r\n",
    "\t",
    " ",
    ":",
    ": ",
    "- ",
    "-",
    "#",
    "&a ",
    "*a",
    "&a [*a]",
    "<<: *a\n",
    "? ",
    "!!binary ",
    "!!str ",
    "!!int ",
    "!!float ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/object/apply:os.system ['true'] ",
    "!custom ",
    "%YAML 1.1\n---\n",
    "%TAG ! tag:example.com,2000:\n",
    "---\n",
    "...\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    '"',
    "'",
    "|\n",
    ">-\n",
    "\\",
    "\\u0000",
    '"\\ud800"',
    '"\\x00"',
    "\ufeff",
    "\x00",
    "\x85",
    "\u2028",
    "null",
    "~",
    "1" * 5000,
    "9" * 400,
    "[" * 2000,
    "{" * 2000,
    "a: &x {b: 1}\n",
)


@st.composite
def mutated_text(draw: st.DrawFn, text: str, *, max_mutations: int = 4) -> str:
    """``text`` with a few characters inserted, deleted or replaced, or syntax spliced in."""
    for _ in range(draw(st.integers(1, max_mutations))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "snippet", "truncate", "dup"]))
        if kind == "insert":
            text = text[:position] + draw(st.text(min_size=1, max_size=4)) + text[position:]
        elif kind == "delete":
            end = position + draw(st.integers(1, 20))
            text = text[:position] + text[end:]
        elif kind == "replace":
            text = text[:position] + draw(st.characters()) + text[position + 1 :]
        elif kind == "snippet":
            text = text[:position] + draw(pick(SYNTAX_SNIPPETS)) + text[position:]
        elif kind == "truncate":
            text = text[:position]
        else:
            end = position + draw(st.integers(1, 200))
            text = text[:end] + text[position:end] + text[end:]
    return text


# ---------------------------------------------------------------------------
# Byte streams


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into pieces at arbitrary points (empty pieces included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces
