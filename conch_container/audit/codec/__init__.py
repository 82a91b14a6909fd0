"""The audit log formats (``audit.format``).

Each is an :class:`~conch_container.interfaces.IAuditCodec`:

- :mod:`.binary`: ContainerSSH's CBOR + gzip log (what the decoder reads);
  :mod:`.binaryread` reads it back.
- :mod:`.asciicast`: the terminal output as an asciinema recording.

``none`` is not a format: the recorder records nothing then.
"""

from __future__ import annotations

from collections.abc import Mapping

from conch_container.audit.codec.asciicast import AsciicastCodec
from conch_container.audit.codec.binary import BinaryCodec
from conch_container.interfaces import IAuditCodec

CODECS: Mapping[str, IAuditCodec] = {
    codec.name: codec for codec in (BinaryCodec(), AsciicastCodec())
}


def codec_for(name: str) -> IAuditCodec:
    """The codec for ``audit.format: name``.

    :raises ValueError: no such format (``none`` included: nothing to encode).
    """
    try:
        return CODECS[name]
    except KeyError:
        known = ", ".join(sorted(CODECS))
        raise ValueError(f"unknown audit format {name!r} (known: {known})") from None
