"""The configuration reference tables, rendered from the field declarations.

``docs/gen_config_reference.py`` puts the output of :func:`render_reference`
into ``docs/configuration.md``; a test checks the two agree, so the
documentation cannot drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from conch_container.config.app import AppConfig
from conch_container.config.http import HTTPClientConfig, HTTPServerConfig
from conch_container.config.kinds import Section
from conch_container.config.schema import PLANNED, Setting, fields_of

_COMMON_BLOCKS: tuple[tuple[type, str, str], ...] = (
    (HTTPClientConfig, "HTTP client block", "http-client-block"),
    (HTTPServerConfig, "HTTP server block", "http-server-block"),
)
_PLANNED_NOTE = (
    "*Not implemented yet (planned). Read for compatibility; a file that switches it on is "
    "refused at start-up, or warned about where running without it is safe (see "
    "[Features not yet supported](operator-guide.md#features-not-yet-supported)).*"
)


def _inline(value: Any) -> str:
    """A default as inline YAML-like text."""
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(entry) for entry in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _default_cell(decl: Setting, value: Any) -> str:
    text = _inline(decl.kind.dump(value))
    return f"`{text}`".replace("|", "\\|")


def _description(decl: Setting) -> str:
    notes = []
    if decl.extension:
        notes.append("**Extension.**")
    if decl.status == PLANNED and not isinstance(decl.kind, Section):
        notes.append("*Planned.*")
    return " ".join([*notes, decl.doc]).replace("|", "\\|")


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    if not rows:
        return []
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} | {doc} |" for key, kind, default, doc in rows]
    return [*lines, ""]


def _first_paragraph(cls: type) -> str:
    """The first paragraph of a class docstring, on one line, reST markup made Markdown."""
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).replace("``", "`")


def _common_base(cls: type) -> tuple[type, str, str] | None:
    for base, title, anchor in _COMMON_BLOCKS:
        if issubclass(cls, base):
            return base, title, anchor
    return None


def _render_section(cls: type, instance: Any, path: str, depth: int, out: list[str]) -> None:
    common = _common_base(cls)
    inherited: dict[str, Any] = {}
    if common is not None:
        base, title, anchor = common
        out.append(f"Includes the [{title}](#{anchor}) inline.")
        out.append("")
        defaults = base()
        inherited = {field.name: getattr(defaults, field.name) for field, _ in fields_of(base)}
    rows = []
    nested = []
    for field, decl in fields_of(cls):
        value = getattr(instance, field.name)
        if field.name in inherited and inherited[field.name] == value:
            continue
        if isinstance(decl.kind, Section):
            nested.append((decl, value))
            continue
        rows.append((decl.key, decl.kind.type_name, _default_cell(decl, value), _description(decl)))
    out.extend(_table(rows))
    for decl, value in nested:
        _render_heading(decl, value, f"{path}.{decl.key}", depth + 1, out)


def _render_heading(decl: Setting, value: Any, path: str, depth: int, out: list[str]) -> None:
    assert isinstance(decl.kind, Section)
    out.append(f"{'#' * min(depth, 5)} `{path}`")
    out.append("")
    note = " **Extension.**" if decl.extension else ""
    out.append(f"{_first_paragraph(decl.kind.cls) or decl.doc}{note}")
    out.append("")
    if decl.status == PLANNED:
        out.append(_PLANNED_NOTE)
        out.append("")
    _render_section(decl.kind.cls, value, path, depth, out)


def render_reference() -> str:
    """The Markdown reference of every configuration key, section by section."""
    out: list[str] = ["## Common blocks", ""]
    for cls, title, anchor in _COMMON_BLOCKS:
        out += [f'### {title} <a id="{anchor}"></a>', ""]
        out.append(_first_paragraph(cls))
        out.append("")
        instance = cls()
        rows = [
            (
                decl.key,
                decl.kind.type_name,
                _default_cell(decl, getattr(instance, f.name)),
                _description(decl),
            )
            for f, decl in fields_of(cls)
        ]
        out.extend(_table(rows))
    config = AppConfig()
    for field, decl in fields_of(AppConfig):
        value = getattr(config, field.name)
        if isinstance(decl.kind, Section):
            _render_heading(decl, value, decl.key, 2, out)
        else:
            out += [f"## `{decl.key}`", ""]
            out.extend(
                _table(
                    [
                        (
                            decl.key,
                            decl.kind.type_name,
                            _default_cell(decl, value),
                            _description(decl),
                        )
                    ]
                )
            )
    return "\n".join(out).rstrip("\n") + "\n"
