"""YAML reading and writing with the rules ContainerSSH's Go YAML library applies.

PyYAML implements YAML 1.1, where ``on``, ``no``, ``2024-01-01`` and
``1:30`` are not strings. ContainerSSH reads its files with Go's yaml.v3,
which resolves plain scalars by the YAML 1.2 core schema: only
``true``/``false`` are booleans, only plain decimal, ``0o`` and ``0x`` numbers
are integers, and there are no implicit timestamps or base-60 numbers. The
loader here does the same, and rejects duplicate keys as yaml.v3 does.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from conch_container.config.errors import ConfigError

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$"
)
_REPLACED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


def _core_schema_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's resolvers minus the YAML 1.1 scalar types."""
    return {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class _CoreSchemaMixin:
    """YAML 1.2 core-schema scalars and no duplicate keys, for any safe loader."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merges another mapping; it is not a key of its own
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc, no-any-return]


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    assert isinstance(node, ScalarNode)
    text = str(loader.construct_scalar(node))
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith("0o"):
        return sign * int(body[2:], 8)
    if body.startswith("0x"):
        return sign * int(body[2:], 16)
    return sign * int(body, 10)


def _core_schema(cls: Any) -> Any:
    cls.yaml_implicit_resolvers = _core_schema_resolvers()
    cls.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
    cls.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
    cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))
    cls.add_constructor("tag:yaml.org,2002:int", _construct_int)
    return cls


@_core_schema
class ConfigLoader(_CoreSchemaMixin, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The loader for configuration files: libyaml's parser when PyYAML has it."""


@_core_schema
class PositionLoader(_CoreSchemaMixin, yaml.SafeLoader):
    """The same rules on the pure-Python parser, whose marks count characters.

    Used to compose node trees for textual edits of a file.
    """


class ConfigDumper(yaml.SafeDumper):
    """A safe dumper whose output reads back identically with :class:`ConfigLoader`.

    It quotes every string that either YAML 1.1 or 1.2 would read as something
    else, and writes multi-line strings (PEM keys, banners) as literal blocks.
    """

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as most hand-written files do.
        super().increase_indent(flow, False)


ConfigDumper.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
ConfigDumper.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
ConfigDumper.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


#: Line breaks YAML knows besides ``\n``; a literal block would fold them into ``\n``.
_OTHER_BREAKS = frozenset("\r\x85\u2028\u2029")


#: A UTF-16 surrogate; in a Python string always one without its partner
#: (from a JSON escape such as ``"\\ud800"``).
_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, as Go's JSON decoder does.

    A lone surrogate cannot be written in UTF-8: it can neither name a file
    nor be dumped as YAML that reads back.
    """
    return _SURROGATE.sub("\ufffd", text)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The escape the emitter would write for a lone surrogate is refused when
    # the file is read back. JSON files have them replaced when read; this
    # covers data given to parse_config directly.
    value = replace_lone_surrogates(value)
    if _OTHER_BREAKS.intersection(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


ConfigDumper.add_representer(str, _represent_str)
ConfigDumper.add_representer(tuple, ConfigDumper.represent_list)


def yaml_error_problem(error: yaml.YAMLError) -> str:
    """An operator-facing description of a YAML syntax error, with its position."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "syntax error"
        if mark is not None:
            return f"invalid YAML: {problem} (line {mark.line + 1}, column {mark.column + 1})"
        return f"invalid YAML: {problem}"
    return f"invalid YAML: {error}"


def load_yaml(text: str) -> Any:
    """Parse one YAML document with :class:`ConfigLoader`.

    :raises ConfigError: on a syntax error, naming its line and column.
    """
    try:
        return yaml.load(text, Loader=ConfigLoader)
    except yaml.YAMLError as error:
        raise ConfigError("", yaml_error_problem(error)) from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as error:
        # PyYAML's constructors raise these for a scalar that is not what its
        # tag says (``!!int x``, ``!!float ""``, ``!!bool maybe``,
        # ``!!timestamp 2001-02-30``, ``!!set [1]``) and for an integer too
        # long to convert.
        raise ConfigError("", f"invalid YAML: a value does not fit its type ({error})") from None
    except RecursionError:
        raise ConfigError("", "invalid YAML: the document is nested too deeply") from None


def compose_yaml(text: str) -> Node | None:
    """The node tree of one YAML document, with character positions, for textual edits."""
    return yaml.compose(text, Loader=PositionLoader)


def dump_yaml(data: Any) -> str:
    """Block-style YAML in the given key order, readable by :func:`load_yaml`."""
    return yaml.dump(
        data,
        Dumper=ConfigDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )
