"""Tests for conch_container.testing."""
