"""A node's data dir: which engine wrote it, and that only one process uses it.

A data dir holds a format marker, ``DYNAGO_STORAGE`` (one JSON line: format, engine,
version), written when the dir is first used. Opening a dir checks it: a dir written by
another engine, or by a later format version, is refused with a StorageError that says
so, instead of being misread. A non-empty dir without the marker is refused too (it is
not a dynago data dir: pointing a node at the wrong dir must not scatter files in it).

The dir is also locked (``flock`` on ``dynago.lock``) for as long as the engine is open:
a second node on the same dir is refused at start, not left to corrupt the first's data.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path

from dynago.storage.engine import StorageError

MARKER = "DYNAGO_STORAGE"
"""Name of the format marker file inside a data dir."""

LOCK = "dynago.lock"
"""Name of the lock file inside a data dir."""

FORMAT = "dynago-storage"
VERSION = 1
"""Version of the on-disk layout that this code writes and reads."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_marker(path: Path, kind: str) -> None:
    """Write the marker atomically and durably (temp file, fsync, rename, fsync dir)."""
    body = json.dumps({"format": FORMAT, "engine": kind, "version": VERSION}) + "\n"
    temp = path / (MARKER + ".tmp")
    with open(temp, "w", encoding="utf-8") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path / MARKER)
    _fsync_dir(path)


def _read_marker(path: Path) -> dict[str, object] | None:
    marker = path / MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StorageError(f"{marker} is not a dynago storage marker; refusing the data dir")
    return data


class DataDir:
    """A claimed data dir: created if missing, checked, marked and locked.

    Raises StorageError if the dir cannot be created or read, is in use by another
    process (or another engine in this one), was written by another engine or a newer
    version, or is a non-empty dir that dynago did not write.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd: int | None = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StorageError(f"cannot open data dir {self.path}: {error.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self._release()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(
                    f"data dir {self.path} is in use by another dynago node (locked)"
                ) from None
            raise StorageError(f"cannot lock data dir {self.path}: {error.strerror}") from None
        try:
            self._check_or_mark()
        except OSError as error:
            self._release()
            raise StorageError(f"cannot use data dir {self.path}: {error.strerror}") from None
        except StorageError:
            self._release()
            raise

    def _check_or_mark(self) -> None:
        marker = _read_marker(self.path)
        if marker is None:
            others = sorted(
                entry.name
                for entry in self.path.iterdir()
                if entry.name not in (LOCK, MARKER + ".tmp")
            )
            if others:
                raise StorageError(
                    f"data dir {self.path} is not empty and has no {MARKER} marker "
                    f"(it holds {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}): "
                    "not a dynago data dir; give an empty or new dir"
                )
            _write_marker(self.path, self.kind)
            return
        engine, version = marker.get("engine"), marker.get("version")
        if engine != self.kind:
            raise StorageError(
                f"data dir {self.path} was written by the {engine} storage engine; this node "
                f"is configured for {self.kind}: configure the {engine} engine or give another dir"
            )
        if not isinstance(version, int) or version > VERSION:
            raise StorageError(
                f"data dir {self.path} has storage format version {version}; this dynago "
                f"reads up to version {VERSION}"
            )

    def files_size(self, names: tuple[str, ...]) -> int:
        """Bytes on disk of the named files of the dir (missing ones count 0)."""
        total = 0
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += (self.path / name).stat().st_size
        return total

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def close(self) -> None:
        """Unlock the dir. Safe to call twice."""
        self._release()
