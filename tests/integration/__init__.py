"""End-to-end tests: the whole gateway, real Docker, real SSH clients."""
