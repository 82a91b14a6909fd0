"""Tests for conch_container.audit: messages, formats, the decoder command."""
