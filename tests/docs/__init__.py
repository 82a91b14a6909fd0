"""Tests of the examples shipped in docs/."""
