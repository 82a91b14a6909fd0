"""The declarations: naming rules, and the generated documentation being current."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase

from conch_container.config import AppConfig
from conch_container.config.kinds import Section
from conch_container.config.reference import render_reference
from conch_container.config.schema import Setting, fields_of

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs")
BEGIN = "<!-- BEGIN GENERATED REFERENCE: docs/gen_config_reference.py -->"
END = "<!-- END GENERATED REFERENCE -->"


def snake(key: str) -> str:
    """The mechanical snake_case of a ContainerSSH key."""
    key = key.replace("-", "_")
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    key = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", key)
    return key.lower()


def walk(cls: type, path: str = "") -> Iterator[tuple[str, str, Setting]]:
    for field, decl in fields_of(cls):
        key_path = f"{path}.{decl.key}" if path else decl.key
        yield key_path, field.name, decl
        if isinstance(decl.kind, Section):
            yield from walk(decl.kind.cls, key_path)


class NamingTests(SynchronousTestCase):
    def test_attribute_names(self) -> None:
        """Every attribute is the mechanical snake_case of its YAML key."""
        for key_path, name, decl in walk(AppConfig):
            self.assertEqual(name, snake(decl.key), key_path)

    def test_every_setting_documented(self) -> None:
        """Every setting has a description."""
        for key_path, _, decl in walk(AppConfig):
            self.assertTrue(decl.doc.strip(), key_path)

    def test_examples(self) -> None:
        """The naming examples the rest of the code relies on."""
        self.assertEqual(snake("maxmind-geoip2-file"), "maxmind_geoip2_file")
        self.assertEqual(snake("serverVersion"), "server_version")
        self.assertEqual(snake("redirectURI"), "redirect_uri")
        self.assertEqual(snake("x11ForwardingMode"), "x11_forwarding_mode")


class DocumentationTests(SynchronousTestCase):
    def test_reference_current(self) -> None:
        """docs/configuration.md holds the reference generated from the declarations."""
        path = os.path.join(DOCS, "configuration.md")
        if not os.path.exists(path):
            raise self.skipTest("the documentation is not next to the tests")
        with open(path, encoding="utf-8") as file:
            document = file.read()
        generated = document.partition(BEGIN)[2].partition(END)[0]
        self.assertEqual(
            generated.strip(),
            render_reference().strip(),
            "run docs/gen_config_reference.py",
        )

    def test_every_key_in_reference(self) -> None:
        """Every key appears in the reference: sections as headings, settings in tables."""
        reference = render_reference()
        for key_path, _, decl in walk(AppConfig):
            if isinstance(decl.kind, Section):
                self.assertIn(f"# `{key_path}`\n", reference)
            else:
                self.assertIn(f"| `{decl.key}` |", reference, key_path)
