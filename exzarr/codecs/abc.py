"""The Codec interface shared by built-in and plugin codecs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class Codec:
    """A numcodecs-compatible codec: bytes-like in, bytes out, with a JSON config.

    Subclasses set ``codec_id``, take their config keys as ``__init__`` keyword
    arguments and implement :meth:`encode` and :meth:`decode`. A codec that the core
    can run without the GIL also returns its step from :meth:`core_step`.
    """

    codec_id: ClassVar[str] = ""
    #: True for codecs that compress bytes (the ``compressor`` slot); False for filters.
    is_compressor: ClassVar[bool] = False

    def encode(self, buf: Any) -> Any:
        """Encode ``buf`` (any buffer) and return the encoded bytes (or, for filters, an
        array of the encoded dtype, as numcodecs' filters return)."""
        raise NotImplementedError

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode ``buf``; into ``out`` (a writable buffer of the decoded size) if given."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The codec's JSON config, identical to what numcodecs writes."""
        return {"id": self.codec_id}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """Build the codec from its config (the ``id`` key is ignored)."""
        return cls(**{k: v for k, v in config.items() if k != "id"})

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype of what ``encode`` makes of data of ``dtype`` (default: the same)."""
        return dtype

    def core_step(self, dtype: np.dtype) -> dict[str, Any] | None:
        """The core's step for arrays of ``dtype``, or None when it has no C path."""
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.get_config().items())))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"
