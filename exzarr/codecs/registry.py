"""Codec registry: codec ids to classes, filled by built-ins, plugins and entry points."""

from __future__ import annotations

from typing import Any

from exzarr.codecs.abc import Codec
from exzarr.errors import InvalidFilterConfigError, UnknownCodecError, UnknownFilterError

ENTRY_POINT_GROUP = "exzarr.codecs"

_registry: dict[str, type[Codec]] = {}
_entry_points_loaded = False


def register_codec(cls: type[Codec], codec_id: str | None = None) -> type[Codec]:
    """Register ``cls`` under ``codec_id`` (default ``cls.codec_id``); usable as a decorator."""
    _registry[codec_id or cls.codec_id] = cls
    return cls


def _load_entry_points(force: bool = False) -> None:
    """Read the entry points once; ``force`` looks again (a package may be new)."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _registry:
            try:
                _registry[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break every lookup
                import warnings

                warnings.warn(f"exzarr codec plugin {ep.name!r} failed to load: {exc}", stacklevel=3)


def registered_codecs() -> dict[str, type[Codec]]:
    """A copy of the registry, entry points included."""
    _load_entry_points()
    return dict(_registry)


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
    cls = _registry.get(codec_id)
    if cls is None:
        _load_entry_points(force=True)
        cls = _registry.get(codec_id)
    if cls is None:
        known = ", ".join(sorted(_registry))
        if kind == "filter":
            raise UnknownFilterError(f"unknown filter {codec_id!r}; registered: {known}", codec_id)
        raise UnknownCodecError(f"unknown codec {codec_id!r}; registered: {known}", codec_id)
    try:
        return cls.from_config(config)
    except InvalidFilterConfigError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidFilterConfigError(codec_id, str(exc)) from exc
