"""Tests for conch_container.backend."""
