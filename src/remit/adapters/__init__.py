"""Implementations of the core's ports; each adapter is the only importer of its library."""
