"""Settings objects that travel as JSON: :class:`Config`, the base of every ``*Config`` dataclass.

Feature, snippet, model and training settings are dataclasses saved with every
run and model. They share one way to become JSON and come back: unknown keys
are refused (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from dataclasses import asdict, fields

from progrock.errors import ConfigError


class Config:
    """Mixin for dataclasses: :meth:`to_dict` and a strict :meth:`from_dict`."""

    def to_dict(self) -> dict:
        """A JSON-ready dictionary; :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """Rebuild from :meth:`to_dict`'s output; unknown keys are a :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)
