"""Hypothesis strategies for audit messages, generated from the payload field table."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conch_container.audit.message import (
    AuditMessage,
    Field,
    Kind,
    MessageType,
    payload_fields,
)

_SCALARS: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.TEXT: st.text(max_size=40),
    Kind.BOOL: st.booleans(),
    Kind.UINT32: st.integers(0, 2**32 - 1),
    Kind.UINT64: st.integers(0, 2**64 - 1),
    Kind.BYTES: st.binary(max_size=200),
}


def values(field: Field) -> st.SearchStrategy[Any]:
    """Values of ``field``'s kind (a list of objects for :attr:`Kind.LIST`)."""
    if field.kind is Kind.LIST:
        return st.lists(objects(field.items), max_size=3)
    return _SCALARS[field.kind]


def objects(fields: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({field.name: values(field) for field in fields})


def payloads(message_type: int) -> st.SearchStrategy[dict[str, Any] | None]:
    """A payload of ``message_type`` with every field; ``None`` for a type without."""
    fields = payload_fields(message_type)
    return st.none() if fields is None else objects(fields)


connection_ids = st.text("0123456789abcdef", min_size=32, max_size=32)
timestamps = st.integers(0, 2**63 - 1)
channel_ids = st.none() | st.integers(0, 2**64 - 1)


def messages_of(message_type: int) -> st.SearchStrategy[AuditMessage]:
    """Messages of one type, as the recorder makes them."""
    return st.builds(
        AuditMessage,
        connection_id=connection_ids,
        timestamp=timestamps,
        type=st.just(message_type),
        payload=payloads(message_type),
        channel_id=channel_ids,
    )


def any_messages() -> st.SearchStrategy[AuditMessage]:
    """Messages of any known type."""
    return st.sampled_from(list(MessageType)).flatmap(messages_of)


#: Messages ContainerSSH may write and this code does not know: new types, new fields.
unknown_messages = st.builds(
    AuditMessage,
    connection_id=connection_ids,
    timestamp=timestamps,
    type=st.integers(502, 2**31 - 1),
    payload=st.none() | st.dictionaries(st.text(max_size=10), st.integers() | st.binary()),
    channel_id=channel_ids,
)
