"""The package's exceptions: one root type, :class:`ProgrockError`.

Every error about a file names the file and the reason, so a batch can report
it and go on with the other files.
"""

from __future__ import annotations

import os


class ProgrockError(Exception):
    """Root of every error progrock raises on purpose."""


class FileError(ProgrockError):
    """An error about one input file: carries ``path`` and ``reason``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DecodeError(FileError):
    """The file could not be decoded as audio (empty, truncated, not audio...)."""


class SnippetError(FileError):
    """The song cannot give snippets: too short, or its features are not finite."""


class DatasetError(ProgrockError):
    """A folder or manifest cannot be read as a dataset."""


class ConfigError(ProgrockError):
    """A configuration is invalid or does not match (e.g. a model's features)."""


class ModelError(ProgrockError):
    """A saved model is missing, truncated, tampered with or incompatible."""
