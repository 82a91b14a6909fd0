"""How an API structure is described: a :class:`Table` of :class:`Field` objects.

The engine that reads values against these tables is
:mod:`~conch_container.config.apistruct`; the tables themselves are
:mod:`~conch_container.config.dockerapi` and
:mod:`~conch_container.config.kubernetesapi`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from conch_container.codes import MessageCode


class Value(enum.Enum):
    """What one value of a field is (each item's or entry's, for a list or a mapping)."""

    STR = "string"
    BOOL = "boolean"
    #: A Go ``int64`` (or narrower: the API decodes it into whatever it has).
    INT = "integer"
    INT32 = "32-bit integer"
    #: Go's ``time.Duration``: integer nanoseconds, or a Go duration string (``30s``).
    DURATION = "duration"
    #: Kubernetes' ``Quantity``: a number, or a string such as ``500m`` or ``1Gi``.
    QUANTITY = "quantity"
    #: Kubernetes' ``IntOrString`` (a port number or name, a percentage).
    INT_OR_STR = "integer or string"
    #: Kubernetes' ``Time``: an RFC 3339 string.
    TIME = "time"
    #: Docker's ``StrSlice``: a list of strings, or one string.
    STR_OR_LIST = "string or list of strings"
    #: Go's ``struct{}`` (the values of Docker's ``ExposedPorts`` and ``Volumes``).
    EMPTY = "empty value"
    #: A structure with its own :class:`Table`.
    OBJECT = "mapping"
    #: Any JSON value, passed on as it is.
    ANY = "any value"


class Shape(enum.Enum):
    """How many values a field holds."""

    ONE = "one value"
    LIST = "list"
    #: A mapping from names the user chooses to values.
    MAP = "mapping"
    #: A mapping from names to lists of values (Docker's ``PortBindings``).
    LIST_MAP = "mapping of lists"


@attrs.frozen
class Field:
    """One field of an API structure.

    :ivar name: its name in the API's JSON, the spelling the configuration holds.
    :ivar value: what its value (each item's, each entry's) is.
    :ivar shape: one value, a list, a mapping or a mapping of lists.
    :ivar table: the structure, when ``value`` is :attr:`Value.OBJECT`.
    :ivar go_name: the Go field name where it differs from ``name``
        (``NanoCPUs`` for ``NanoCpus``): accepted too, and the base of the
        YAML spelling of tables that write names in lower case.
    """

    name: str
    value: Value
    shape: Shape = Shape.ONE
    table: Table | None = attrs.field(default=None, repr=False)
    go_name: str | None = None


@attrs.frozen
class PassUnknown:
    """The policy of a table whose unknown keys are passed on as written.

    :ivar code: the warning each such key gets at load.
    :ivar message: the warning's text.
    """

    code: MessageCode
    message: str


class Table:
    """The fields of one API structure, found by any spelling in any letter case.

    :param title: the structure's name, for the documentation.
    :param fields: its fields.
    :param lower_case_yaml: ContainerSSH's YAML spells the fields as their Go
        names in lower case (Docker's structures); otherwise as in the API.
    :param unknown: what to do with a key the table does not know: pass it on
        (:class:`PassUnknown`) or, for ``None``, refuse it.
    :raises ValueError: when two fields have the same spelling.
    """

    def __init__(
        self,
        title: str,
        fields: Iterable[Field],
        *,
        lower_case_yaml: bool = False,
        unknown: PassUnknown | None = None,
    ) -> None:
        self.title = title
        self.fields = tuple(fields)
        self.lower_case_yaml = lower_case_yaml
        self.unknown = unknown
        self.by_name = {field.name: field for field in self.fields}
        self._by_folded: dict[str, Field] = {}
        for field in self.fields:
            for spelling in {field.name.lower(), (field.go_name or field.name).lower()}:
                if self._by_folded.setdefault(spelling, field) is not field:
                    raise ValueError(f"{title}: two fields are spelled {spelling!r}")

    def __repr__(self) -> str:
        return f"<Table {self.title}: {len(self.fields)} fields>"

    def find(self, key: str) -> Field | None:
        """The field ``key`` names, matched as Go's JSON decoder matches, or ``None``."""
        return self._by_folded.get(key.lower())

    def yaml_key(self, field: Field) -> str:
        """How ContainerSSH spells ``field`` in a YAML file."""
        if self.lower_case_yaml:
            return (field.go_name or field.name).lower()
        return field.name

    def joined(self, title: str, other: Table) -> Table:
        """A table with the fields of both (Docker's ``HostConfig`` with its resources)."""
        return Table(
            title,
            (*self.fields, *other.fields),
            lower_case_yaml=self.lower_case_yaml,
            unknown=self.unknown,
        )
