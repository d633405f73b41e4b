"""A ZipStore's writes since its last commit: a new archive beside the committed one,
renamed over it at commit.

The new archive starts as a copy of the committed archive's members (``base``), so
their offsets stay valid and only the central directory is written anew at commit.
Errors here are plain OSErrors; ZipStore turns them into StorageErrors naming the
archive.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import zipfile
from typing import Any

from exzarr.storage._leftovers import (LEFTOVER_AGE, TEMP_PREFIX, TEMP_SUFFIX, is_leftover,
                                       temp_tag)
from exzarr.storage._locks import folder_lock
from exzarr.storage._zipfile_archive import Snapshot, copy_range, pwrite_all, read_planned
from exzarr.storage._zipfile_format import central_directory, from_zipinfo, record_size, stored_member

# Temporary archives this process is writing (registered before they exist): never
# removed as leftovers, however long they sit unchanged.
live_temps: set[str] = set()
_counter = itertools.count()


def temp_name(path: str) -> str:
    """A new temporary archive's path beside ``path``: ``.tmp-{tag}.{name}.partial``,
    the tag being the one temporary chunk files have (see ``_leftovers.temp_tag``)."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f"{TEMP_PREFIX}{temp_tag(_counter)}.{name}{TEMP_SUFFIX}")


def _temp_of(entry: str, name: str) -> bool:
    """Whether ``entry`` is a temporary archive of the archive ``name``."""
    end = f".{name}{TEMP_SUFFIX}"
    if not (entry.startswith(TEMP_PREFIX) and entry.endswith(end)):
        return False
    tag = entry[len(TEMP_PREFIX):-len(end)]
    return tag != "" and "." not in tag


def sync_data(fd: int, full: bool) -> None:
    """Put a new archive's bytes on disk before it is renamed over the old one (a rename
    of unwritten data can leave an empty archive after a power loss); ``full`` syncs
    its metadata too (fsync), else its data and size only (fdatasync)."""
    if full or not hasattr(os, "fdatasync"):
        os.fsync(fd)
    else:
        os.fdatasync(fd)


class Session:
    """Writes to the archive at ``path`` since ``base`` (None: no archive yet)."""

    def __init__(self, path: str, base: Snapshot | None) -> None:
        self.archive = path
        self.base = base
        self.path: str | None = None  # the new archive, made on first need
        self.fd: int | None = None
        self.unnamed = False  # the new archive's name was removed: commit by rewriting
        self.end = 0  # where the next member goes
        self.touched: dict[str, bool] = {}  # keys written (True) or deleted (False) here
        self.dead = base.dead if base is not None else 0  # bytes no member points to
        # key -> the base's ZipInfo, or (Member, data offset) of a member written here
        self.entries: dict[str, Any] = dict(base.members) if base is not None else {}

    # -- the new archive ----------------------------------------------------------------
    def file(self) -> int:
        """The new archive's descriptor, made with the committed members copied."""
        if self.fd is not None:
            return self.fd
        folder, name = os.path.split(self.archive)
        remove_leftovers(folder, name)
        tmp = temp_name(self.archive)
        live_temps.add(tmp)  # before it exists: another store's sweep must never see it unlisted
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666)
        except BaseException:
            live_temps.discard(tmp)
            raise
        try:
            if self.base is not None:
                os.fchmod(fd, self.base.mode)
                copy_range(self.base.file.fileno(), fd, self.base.end)
        except BaseException:  # no half copy: the next write starts afresh
            os.close(fd)
            _unlink(tmp)
            raise
        self.path, self.fd = tmp, fd
        self.end = self.base.end if self.base is not None else 0
        return fd

    def cut(self) -> None:
        """Drop what a failed write left past the end (freeing its space)."""
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, self.end)
            except OSError:
                pass

    def write(self, key: str, data: memoryview, crc: int) -> None:
        fd = self.file()
        member, header = stored_member(key, data.nbytes, crc, self.end)
        try:
            at = pwrite_all(fd, header, self.end)
            end = pwrite_all(fd, data, at)
        except BaseException:
            self.cut()
            raise
        self.drop(key, written=True)
        self.entries[key] = (member, at)
        self.end = end

    def drop(self, key: str, written: bool = False) -> None:
        self.touched[key] = written
        old = self.entries.pop(key, None)
        if isinstance(old, zipfile.ZipInfo):
            self.dead += record_size(old)
        elif old is not None:
            member, data_at = old
            self.dead += data_at - member.offset + member.size

    # -- reading ------------------------------------------------------------------------
    def plan(self, keys: list[str]) -> tuple[int, list[Any]]:
        """As :meth:`Snapshot.plan`, over what this session holds."""
        base = self.base
        if self.fd is not None:
            fd = os.dup(self.fd)
        elif base is not None:  # nothing written yet: the members are where they were
            fd = os.dup(base.file.fileno())
        else:
            fd = os.open(os.devnull, os.O_RDONLY)  # (and no members at all)
        try:
            plan: list[Any] = []
            for key in keys:
                entry = self.entries.get(key)
                if entry is None:
                    plan.append(None)
                elif isinstance(entry, zipfile.ZipInfo):  # at the same offset in the copy
                    assert base is not None
                    plan.append(base.locate(fd, entry))
                else:
                    member, data_at = entry
                    plan.append((data_at, member.size, member.crc))
            return fd, plan
        except BaseException:
            os.close(fd)
            raise

    # -- commit -------------------------------------------------------------------------
    def commit(self, sync: bool, rewrite: bool, merge: bool) -> None:
        """Replace the archive with this session's (synced first when ``sync``):
        rewritten without dead bytes when ``rewrite`` or they are a quarter of it; with
        ``merge``, over an archive another writer committed since ``base``."""
        # Two writers' commits take turns (where the file system has flock; without,
        # commits go on unlocked): not file_lock, which would put a lock file beside
        # every archive.
        with folder_lock(os.path.dirname(self.archive)):
            other = _changed_since(self.archive, self.base) if merge else None
            if other is not None or rewrite or self.unnamed or self.dead * 4 > self.end:
                self._rewrite(sync, other)
                return
            fd = self.file()
            members = [from_zipinfo(e) if isinstance(e, zipfile.ZipInfo) else e[0]
                       for e in self.entries.values()]
            try:
                end = pwrite_all(fd, central_directory(members, self.end), self.end)
                os.ftruncate(fd, end)
                sync_data(fd, sync)
                assert self.path is not None
                os.replace(self.path, self.archive)
            except FileNotFoundError:
                # Someone removed the new archive's name (a cleaner, another host's age
                # rule): its bytes are still here, through the open descriptor.
                self.cut()
                live_temps.discard(self.path)  # type: ignore[arg-type]
                self.path, self.unnamed = None, True  # (until a commit succeeds)
                self._rewrite(sync, None)
                return
            except BaseException:
                self.cut()
                raise
            live_temps.discard(self.path)
            self.path = None  # it is the archive now

    def _rewrite(self, sync: bool, other: Snapshot | None) -> None:
        """Commit a new archive of only the live members, written by zipfile; with
        ``other``, its members with this session's writes and deletions over them."""
        if other is None:
            keys = list(self.entries)
        else:
            keys = [k for k in other.members if k not in self.touched]
            keys += [k for k, written in self.touched.items() if written]
        tmp = temp_name(self.archive)
        live_temps.add(tmp)
        try:
            with open(tmp, "xb") as f:
                if self.base is not None:
                    os.fchmod(f.fileno(), self.base.mode)
                with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED,
                                     allowZip64=True) as out:
                    for i in range(0, len(keys), 64):
                        batch = keys[i:i + 64]
                        for key, value in zip(batch, self._values(other, batch)):
                            info = zipfile.ZipInfo(key, date_time=(1980, 1, 1, 0, 0, 0))
                            info.compress_type = zipfile.ZIP_STORED
                            info.external_attr = 0o100644 << 16
                            out.writestr(info, value)  # type: ignore[arg-type]
                f.flush()
                sync_data(f.fileno(), sync)
            os.replace(tmp, self.archive)
        except BaseException:
            _unlink(tmp)
            raise
        finally:
            live_temps.discard(tmp)
            if other is not None:
                other.close()

    def _values(self, other: Snapshot | None, keys: list[str]) -> list[Any]:
        """The values of ``keys`` for a rewrite: this session's, or else ``other``'s."""
        got: dict[str, Any] = {}
        for source, wanted in ((self, [k for k in keys if other is None or k in self.touched]),
                               (other, [k for k in keys if other is not None
                                        and k not in self.touched])):
            if wanted:
                fd, plan = source.plan(wanted)  # type: ignore[union-attr]
                try:
                    got.update(zip(wanted, read_planned(fd, wanted, plan, self.archive)))
                finally:
                    os.close(fd)
        return [got[k] for k in keys]

    def close(self) -> None:
        """Release the descriptors, and remove the new archive unless it was renamed
        into place (uncommitted writes are gone then)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            _unlink(self.path)
            self.path = None
        if self.base is not None:
            self.base.close()
            self.base = None

    def forget(self) -> None:
        """In a forked child: close this process's copies of the descriptors only (the
        new archive is the parent's, to commit or remove)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path = None
        if self.base is not None:
            self.base.close()
            self.base = None


def _unlink(path: str) -> None:
    live_temps.discard(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _changed_since(path: str, base: Snapshot | None) -> Snapshot | None:
    """The archive at ``path`` when another writer committed it after ``base`` was
    opened (None when it is still ``base``'s, or gone)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if base is not None and base.stamp == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
        return None
    try:
        return Snapshot(path)
    except FileNotFoundError:
        return None


# Temporary archives of exzarr before their names carried the host and process.
_OLD_TEMP = r"\.\d+\.[0-9a-f]{8}\.partial"


def remove_leftovers(folder: str, name: str) -> None:
    """Remove temporary archives of ``name`` whose writer is gone (killed before it
    committed), judged as temporary chunk files are (``_leftovers.is_leftover``): a
    dead process of this host and pid namespace, or unchanged for an hour. This
    process's live ones stay whatever their age."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    old = re.compile(re.escape(name) + _OLD_TEMP)
    now = time.time()
    for entry in entries:
        full = os.path.join(folder, entry)
        if _temp_of(entry, name):
            gone = full not in live_temps and is_leftover(folder, entry, now)
        elif old.fullmatch(entry):  # whose pid cannot be judged: by age only
            try:
                gone = now - os.lstat(full).st_mtime > LEFTOVER_AGE
            except OSError:
                gone = False
        else:
            continue
        if gone:
            try:
                os.unlink(full)
            except OSError:
                pass
