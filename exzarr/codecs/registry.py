"""Codec registry: codec ids to classes, filled by built-ins, plugins and entry points."""

from __future__ import annotations

from typing import Any

from exzarr._plugins import EntryPointRegistry
from exzarr.codecs.abc import Codec
from exzarr.errors import (ExZarrError, InvalidFilterConfigError, UnknownCodecError,
                           UnknownFilterError)

ENTRY_POINT_GROUP = "exzarr.codecs"

_registry = EntryPointRegistry(ENTRY_POINT_GROUP, "codec")


def register_codec(cls: type[Codec], codec_id: str | None = None) -> type[Codec]:
    """Register ``cls`` under ``codec_id`` (default ``cls.codec_id``); usable as a decorator."""
    _registry.register(codec_id or cls.codec_id, cls)
    return cls


def registered_codecs() -> dict[str, type[Codec]]:
    """A copy of the registry, entry points included."""
    return _registry.all()


def get_codec(config: dict[str, Any], *, kind: str = "codec") -> Codec:
    """Build a codec from a numcodecs-style config dict such as ``{"id": "zstd", "level": 3}``.

    Parameters
    ----------
    config : dict
        The config; ``id`` selects the class, the other keys are its options.
    kind : {"codec", "filter"}
        What the caller asked for, so an unknown id raises the matching error.

    Raises
    ------
    UnknownCodecError, UnknownFilterError
        No codec is registered under the id.
    InvalidFilterConfigError
        The codec rejects the options.
    """
    if not isinstance(config, dict) or not isinstance(config.get("id"), str):
        raise InvalidFilterConfigError(str(config), "a codec config is a dict with a string 'id'")
    codec_id = config["id"]
    cls = _registry.lookup(codec_id)
    if cls is None:
        known = ", ".join(sorted(_registry.entries))
        if kind == "filter":
            raise UnknownFilterError(f"unknown filter {codec_id!r}; registered: {known}", codec_id)
        raise UnknownCodecError(f"unknown codec {codec_id!r}; registered: {known}", codec_id)
    try:
        return cls.from_config(config)
    except ExZarrError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidFilterConfigError(codec_id, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a plugin codec may reject options any way
        raise InvalidFilterConfigError(codec_id, f"{type(exc).__name__}: {exc}") from exc
