"""Which keys a ZipStore takes: none that an extracting tool could place outside the
folder it extracts to, and none that zip readers would cut or merge with another."""

from __future__ import annotations

import re
from typing import Any

from exzarr.errors import InvalidKeyError

# "C:", "c:x": a drive on Windows extractors.
_DRIVE = re.compile(r"[A-Za-z]:")


def key_problem(key: object) -> str | None:
    """Why ``key`` is refused, or None when it is a usable member name."""
    if type(key) is str and key and key[0] not in "./" and key[-1] != "/" and "//" not in key \
            and "/." not in key and "\x00" not in key and "\\" not in key and key[1:2] != ":":
        return None  # the common case, in a few string tests
    if not isinstance(key, str):
        return f"a key is a str, not {type(key).__name__}"
    if not key:
        return "the key is empty"
    if "\x00" in key:
        return "it holds a NUL character (zip readers cut names there, so two keys would merge)"
    if key.startswith("/"):
        return "it starts with '/' (an absolute path for whoever extracts the archive)"
    if _DRIVE.match(key):
        return "it starts with a drive letter (an absolute path on Windows)"
    for part in key.split("/"):
        if part == "":
            return "it has an empty part ('//' or a trailing '/')"
        if part in (".", ".."):
            return f"it has a {part!r} part"
        if "\\" in part and any(p in (".", "..", "") for p in part.split("\\")):
            return "it has a '.', '..' or empty part between backslashes (a path on Windows)"
    return None


def check_key(key: object) -> str:
    """``key``, or InvalidKeyError saying why a zip archive cannot hold it."""
    if type(key) is str and key and key[0] not in "./" and key[-1] != "/" and "//" not in key \
            and "/." not in key and "\x00" not in key and "\\" not in key and key[1:2] != ":":
        return key  # as key_problem's first test
    problem = key_problem(key)
    if problem is not None:
        raise InvalidKeyError(
            f"invalid key {key!r} for a zip archive: {problem}; use '/'-separated names "
            "without empty, '.' or '..' parts", key)
    return key  # type: ignore[return-value]


# Joined by newlines, keys holding none of these are all valid (each passes the first
# test of key_problem); a batch of chunk keys is checked in a few string searches.
_SUSPECT = ("//", "/.", "\n.", "/\n", "\n/", "\n\n", "\x00", "\\", ":")


def check_keys(keys: Any) -> list[str]:
    """``keys`` as a list, each checked as :func:`check_key` checks one."""
    keys = list(keys)
    if all(type(k) is str for k in keys):
        joined = "\n" + "\n".join(keys) + "\n"
        if not any(bad in joined for bad in _SUSPECT):
            return keys
    return [check_key(k) for k in keys]
