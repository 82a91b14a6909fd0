#!/usr/bin/env python3
"""Regenerate the key reference in docs/configuration.md from the config declarations.

Usage: ``python docs/gen_config_reference.py`` rewrites the generated part of
the document; ``--check`` only reports (exit status 1) whether it is stale.
"""

from __future__ import annotations

import argparse
import os
import sys

BEGIN = "<!-- BEGIN GENERATED REFERENCE: docs/gen_config_reference.py -->"
END = "<!-- END GENERATED REFERENCE -->"
DOCUMENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configuration.md")


def splice(document: str, reference: str) -> str:
    """``document`` with the text between the markers replaced by ``reference``."""
    head, found, rest = document.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError("the reference markers are missing from the document")
    return f"{head}{BEGIN}\n\n{reference}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    options = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from conch_container.config.reference import render_reference

    with open(DOCUMENT, encoding="utf-8") as file:
        document = file.read()
    updated = splice(document, render_reference())
    if options.check:
        if updated != document:
            print(f"{DOCUMENT} is out of date; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    if updated != document:
        with open(DOCUMENT, "w", encoding="utf-8") as file:
            file.write(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
