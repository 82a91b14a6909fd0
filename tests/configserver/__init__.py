"""Tests of the configuration server client and the per-connection configuration."""
