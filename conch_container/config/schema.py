"""The declarative field mechanism behind every config section.

Each section is a frozen attrs class whose fields are declared with
:func:`setting`: the ContainerSSH key, a *kind* (how a value is parsed,
checked and written back), the default and a one-line description. One walker,
:func:`parse_section`, then does for every section what ContainerSSH's Go
decoder does: strict key matching (unknown keys are errors naming the full
key path), defaults for absent keys and for ``null``, and values parsed by
their kind. The same declarations drive :mod:`~conch_container.config.dump`
and the generated reference in ``docs/configuration.md``.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn, TypeVar

import attrs

from conch_container.codes import MessageCode
from conch_container.config.errors import ConfigError, ConfigWarning

_SETTING = "conch_container.config.setting"

#: Status of a setting or section that is accepted but not yet acted on.
PLANNED = "planned"

SourceFormat = Literal["yaml", "json"]
T = TypeVar("T")


#: A value check: returns the problem with ``value``, or ``None`` if it is fine.
Check = Callable[[Any], "str | None"]


class Kind:
    """How one kind of value is read, checked, written back and documented.

    Subclasses implement :meth:`convert` and :meth:`dump`; :meth:`parse` adds
    the rules every kind shares: ``null`` means "keep the base value", and
    (for scalar kinds) so does the zero value, because ContainerSSH re-applies
    its defaults to zero values after reading the file. Then the kind's checks
    run on the result.
    """

    #: The type as named in the documentation.
    type_name = "value"
    #: Whether a zero value (``""``, ``0``, ``0s``) is replaced by the default.
    zero_is_default = False

    def __init__(self, *checks: Check) -> None:
        self.checks = checks

    def parse(self, raw: object, ctx: Context, path: str, base: Any) -> Any:
        """The value for ``raw`` found at ``path``; ``base`` is the current value."""
        if raw is None:
            return base
        value = self.combine(self.convert(raw, ctx, path), base, ctx)
        if self.zero_is_default and self.is_zero(value) and not ctx.explicit:
            value = base
        for check in self.checks:
            problem = check(value)
            if problem:
                fail(path, problem)
        return value

    def convert(self, raw: object, ctx: Context, path: str) -> Any:
        """Turn a non-null raw value into the config value, or raise ConfigError."""
        raise NotImplementedError

    def combine(self, value: Any, base: Any, ctx: Context) -> Any:
        """The value to keep given the file's ``value`` and the current ``base``.

        In merge mode (per-connection overlays) an empty or false value leaves
        the base alone, as ContainerSSH's merge does, unless the overlay's
        values are explicit (:attr:`Context.explicit`).
        """
        if (
            ctx.merge
            and not ctx.explicit
            and (value is False or (isinstance(value, str | tuple | dict) and not value))
        ):
            return base
        return value

    def is_zero(self, value: Any) -> bool:
        return not isinstance(value, bool) and isinstance(value, str | int | float) and not value

    def dump(self, value: Any) -> Any:
        """The value as it is written in a YAML file."""
        raise NotImplementedError


def _empty(value: Any) -> bool:
    return isinstance(value, str | tuple | dict) and not value


@attrs.frozen
class Setting:
    """What a config field declares about itself (kept in the attrs metadata).

    :ivar key: the key in the file, spelled as ContainerSSH spells it.
    :ivar kind: how its value is parsed and written.
    :ivar doc: one-line description for the reference.
    :ivar extension: True for keys ContainerSSH does not have.
    :ivar status: :data:`PLANNED` when accepted but not acted on yet.
    """

    key: str
    kind: Kind
    doc: str
    extension: bool = False
    status: str | None = None


def setting(
    key: str,
    kind: Kind,
    default: Any,
    *,
    doc: str,
    extension: bool = False,
    status: str | None = None,
) -> Any:
    """Declare a config field: use as ``name: type = setting(...)`` in a section class."""
    meta = {_SETTING: Setting(key, kind, doc, extension, status)}
    if isinstance(default, dict | list) or attrs.has(type(default)):
        # Sections are frozen but may hold dicts (Docker and Kubernetes
        # structs): a fresh deep copy per instance means no default is shared.
        return attrs.field(factory=lambda: copy.deepcopy(default), metadata=meta)
    return attrs.field(default=default, metadata=meta)


Declared = tuple[tuple["attrs.Attribute[Any]", Setting], ...]
_DECLARED: dict[type, Declared] = {}


def fields_of(cls: type) -> Declared:
    """A section's settings in declaration order, base classes first.

    attrs moves a field a subclass redefines (to change its default) to the
    end; the file and the documentation keep it where the base declared it.
    """
    declared = _DECLARED.get(cls)
    if declared is None:
        declared = _DECLARED[cls] = _collect_fields(cls)
    return declared


def _collect_fields(cls: type) -> Declared:
    order: list[str] = []
    for klass in reversed(cls.__mro__):
        if attrs.has(klass):
            for field in attrs.fields(klass):
                if field.name not in order:
                    order.append(field.name)
    by_name = {field.name: field for field in attrs.fields(cls)}
    result = []
    for name in order:
        field = by_name[name]
        declared = field.metadata.get(_SETTING)
        if isinstance(declared, Setting):
            result.append((field, declared))
    return tuple(result)


def join(path: str, key: str) -> str:
    """The dotted path of ``key`` inside ``path``."""
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    """The path of list item ``index`` inside ``path``."""
    return f"{path}[{index}]"


def describe(value: object) -> str:
    """How a raw value's type is named in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


@attrs.define
class Context:
    """State shared while one file (or one config-server answer) is parsed.

    :ivar source_format: ``"yaml"`` or ``"json"``; JSON follows Go's JSON
        rules (durations as integer nanoseconds, case-insensitive keys).
    :ivar base_dir: directory relative file names are resolved against;
        ``None`` for the working directory, as ContainerSSH does.
    :ivar merge: overlay mode for per-connection config: like ContainerSSH's
        merge, ``false``, empty lists and zero values leave the base alone.
    :ivar explicit: with ``merge``, every value the overlay gives takes
        effect, ``false``, ``0``, ``""`` and empty lists included; only keys
        it leaves out (or sets to ``null``) keep the base value. Maps still
        merge key by key.
    :ivar warnings: collected :class:`ConfigWarning` objects.
    """

    source_format: SourceFormat = "yaml"
    base_dir: str | None = None
    merge: bool = False
    explicit: bool = False
    warnings: list[ConfigWarning] = attrs.Factory(list)

    @property
    def json(self) -> bool:
        return self.source_format == "json"

    def warn(self, code: MessageCode, path: str, message: str) -> None:
        self.warnings.append(ConfigWarning(code, path, message))

    def resolve(self, filename: str) -> str:
        """A file name from the config, made absolute against :attr:`base_dir`."""
        if self.base_dir is not None and not os.path.isabs(filename):
            return os.path.join(self.base_dir, filename)
        return filename


def fail(path: str, problem: str) -> NoReturn:
    """Raise the :class:`ConfigError` for ``path``."""
    raise ConfigError(path, problem)


def unknown_key_problem(
    key: str, known: list[str], removed: Mapping[str, str] | None = None
) -> str:
    """The problem to report for ``key``, with the known key it is probably a typo of.

    :param removed: keys that were removed, with a hint at their replacement.
    """
    if removed and key in removed:
        return f"unknown key ({removed[key]})"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return "unknown key"


def parse_section(cls: type[T], raw: object, ctx: Context, path: str, base: T | None = None) -> T:
    """Build a section instance from the raw mapping found at ``path``.

    Keys absent from ``raw`` keep the value they have in ``base`` (the
    section's defaults unless given). ``null`` for the whole section means
    ``base`` unchanged. A section class may list keys ContainerSSH removed in
    a ``removed_keys: ClassVar[dict[str, str]]`` attribute (key to hint); the
    unknown-key error then carries the hint.

    :raises ConfigError: for an unknown key, a non-string key or a bad value.
    """
    if base is None:
        base = cls()
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        fail(path, f"must be a mapping, not {describe(raw)}")
    declared = fields_of(cls)
    removed: dict[str, str] = getattr(cls, "removed_keys", {})
    by_key = {decl.key: (field, decl) for field, decl in declared}
    by_folded = {decl.key.lower(): (field, decl) for field, decl in declared}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            fail(join(path, str(key)), "keys must be strings")
        found = by_key.get(key)
        if found is None and ctx.json:
            # Go's encoding/json matches field names case-insensitively.
            found = by_folded.get(key.lower())
        if found is None:
            fail(join(path, key), unknown_key_problem(key, list(by_key), removed))
        field, decl = found
        current = values.get(field.name, getattr(base, field.name))
        values[field.name] = decl.kind.parse(value, ctx, join(path, decl.key), current)
    return attrs.evolve(base, **values)  # type: ignore[misc]


def dump_section(value: Any) -> dict[str, Any]:
    """A section instance as the mapping a YAML file would hold, in key order."""
    return {
        decl.key: decl.kind.dump(getattr(value, field.name))
        for field, decl in fields_of(type(value))
    }
