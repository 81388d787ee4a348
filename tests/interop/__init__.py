"""Interop tests against the official spalloc clients and the reference server (PyPI)."""
