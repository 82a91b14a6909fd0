"""Tests for conch_container.ssh."""
