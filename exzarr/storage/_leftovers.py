"""Temporary chunk files: their names, and removing those a killed writer left behind."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

#: Seconds after its last change past which a temporary chunk file is a leftover whoever
#: made it (a writer on another host, whose life this host cannot see).
LEFTOVER_AGE = 3600.0

#: How every temporary file name starts and ends: ``.tmp-{tag}[...].partial`` (the
#: directory store's chunk files, the zip store's archives).
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".partial"
_host: tuple[int, str] | None = None  # (pid it was computed in, identity)


def host_id() -> str:
    """Eight hex digits naming this host's boot and process namespace: two writers with
    the same identity see each other's processes, so a pid in a temporary name is
    checkable exactly when the identity in it is this one."""
    global _host
    pid = os.getpid()
    if _host is None or _host[0] != pid:
        parts: list[bytes] = []
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                parts.append(f.read().strip())
            parts.append(str(os.stat("/proc/self/ns/pid").st_ino).encode())
        except OSError:  # no /proc: the host name and boot time stand in
            import socket

            parts.append(socket.gethostname().encode())
            parts.append(str(int(time.time() - time.monotonic()) // 60).encode())
        _host = (pid, hashlib.blake2b(b"\n".join(parts), digest_size=4).hexdigest())
    return _host[1]


def temp_tag(counter: Any) -> str:
    """The unique middle of a temporary name: host identity, process, thread, call and
    a random part (``.tmp-{tag}...partial``)."""
    return (f"{host_id()}-{os.getpid()}-{threading.get_ident()}-{next(counter)}-"
            f"{os.urandom(4).hex()}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary chunk file's."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid: alive as far as we know
    return True


def is_leftover(folder: str, name: str, now: float) -> bool:
    """Whether the temporary file ``name`` in ``folder`` is safe to remove: made by a
    process of this host that is dead, or unchanged for :data:`LEFTOVER_AGE` seconds.
    A live writer's file is neither (its pid is alive, and it is being written)."""
    fields = name[len(TEMP_PREFIX):].split("-")
    if len(fields) >= 3 and fields[0] == host_id() and fields[1].isdigit():
        if not _pid_alive(int(fields[1])):
            return True
    try:
        changed = os.lstat(os.path.join(folder, name)).st_mtime
    except OSError:
        return False  # gone already
    return now - changed > LEFTOVER_AGE


def sweep_folder(folder: str) -> int:
    """Remove the leftover temporary files in ``folder`` (not below it); how many."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return 0  # missing, or not ours to read: nothing to do
    removed = 0
    now = time.time()
    for name in names:
        if is_temp_name(name) and is_leftover(folder, name, now):
            try:
                os.unlink(os.path.join(folder, name))
                removed += 1
            except OSError:
                pass  # removed by another sweeper, or not ours to remove
    return removed
