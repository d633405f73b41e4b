"""Plugin discovery shared by the codec and storage registries."""

from __future__ import annotations

import warnings
from typing import Any


class EntryPointRegistry:
    """Names to objects: registered in-process, or found in an entry-point group.

    Entry points are read on first use and again when a name is missing (a plugin
    package may have been installed since). A plugin that fails to import is reported
    with a warning and skipped, so one broken package cannot break every lookup.
    """

    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self.entries: dict[str, Any] = {}
        self._scanned = False

    def register(self, name: str, obj: Any) -> None:
        self.entries[name] = obj

    def scan(self, force: bool = False) -> None:
        if self._scanned and not force:
            return
        self._scanned = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name in self.entries:
                continue
            try:
                self.entries[ep.name] = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure of a plugin
                warnings.warn(f"exzarr {self.kind} plugin {ep.name!r} failed to load: {exc}",
                              stacklevel=3)

    def lookup(self, name: str) -> Any | None:
        obj = self.entries.get(name)
        if obj is None:
            self.scan(force=True)
            obj = self.entries.get(name)
        return obj

    def all(self) -> dict[str, Any]:
        self.scan()
        return dict(self.entries)
