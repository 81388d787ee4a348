"""The package version, kept in one place for setuptools and ``--version``."""

__version__ = "7.5.0"
