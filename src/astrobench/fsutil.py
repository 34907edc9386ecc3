"""Atomic writes: a file or folder appears under its final name complete, or not at all.

Everything is first written under a temporary name in the destination folder (same filesystem)
and then renamed, so a process killed mid-write leaves only a dot-prefixed temporary that readers
ignore, and two processes writing the same name never interleave.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator


def stage_bytes(path: Path, payload: bytes) -> str:
    """``payload`` in a dot-prefixed temporary file beside ``path`` (readers ignore it), synced;
    the caller renames it into place (or several, once all are staged)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = stage_bytes(path, payload)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temp_owner_tag() -> str:
    """``<host>~<pid>``: written into temporary names so a cleaner can tell a live writer's folder."""
    return f"{socket.gethostname().replace('~', '-')}~{os.getpid()}"


def temp_owner_alive(name: str) -> bool:
    """Whether the process that named a temporary ``...tmp-<host>~<pid>-XXXX`` may still be writing it.

    A folder from another host (a shared filesystem) counts as alive: its process cannot be checked."""
    tag = name.rpartition(".tmp-")[2]
    host, sep, rest = tag.partition("~")
    pid_text = rest.partition("-")[0]
    if not sep or not pid_text.isdigit():
        return False  # a name from before owners were recorded: its writer is long gone
    if host != socket.gethostname().replace("~", "-"):
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_writable(folder: Path, what: str, option: str) -> None:
    """Fail now, not after hours of training, when ``folder`` cannot take files: an existing folder
    gets a probe file (a full disk fails here too); a missing one is not created (a failed run
    leaves nothing behind), its nearest existing parent must be a writable folder."""
    folder = Path(folder)
    try:
        if folder.exists():
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
            return
        parent = next(p for p in folder.parents if p.exists())
        if not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"no permission to create folders in {parent}")
    except OSError as exc:
        raise OSError(f"{what} {str(folder)!r} is not writable ({exc.strerror or exc}); "
                      f"fix its permissions or free space, or choose another with {option}") from exc


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path``.

    An old ``path`` is renamed aside before the new one is renamed in and deleted after, so the
    name never holds a half-deleted folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{temp_owner_tag()}-", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.tmp-{temp_owner_tag()}-", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
