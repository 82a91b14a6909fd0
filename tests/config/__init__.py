"""Tests for conch_container.config."""
