"""The core's own tests use the shipped pytest plugin (``core.testing``), like partners do."""
