"""One writer per id range of a table directory: an exclusive, crash-safe lock.

A generator holds `RangeLock(dir, (a, b))` for ids a..b-1 while it writes; `merge_table` and
`repair_table` hold the whole table (`WHOLE`). A second holder whose range overlaps is
refused at once with a `TableLockError` naming the holder (command, pid, host, start time);
disjoint ranges proceed side by side, so machines can fill disjoint `--index-range`s of one
table on a shared filesystem.

Files (names start with "." so Parquet readers skip them):
    DIR/.lcsim-lock             the registry: flock'ed for a moment while a holder is added,
                                checked or removed
    DIR/.lcsim-locks/<id>.json  one per holder: host, pid, start time, range, command; the
                                holder keeps an exclusive flock on it for as long as it lives
The last holder to release removes both, so a finished table carries no lock files.

Why flock on an open file: the kernel releases it when the holding process dies, however it
dies (SIGKILL, a crash), so a holder file whose flock can be taken is a stale lock: the next
acquirer removes it and goes on (logged). File descriptors are not inherited by spawned
processes (PEP 446), so workers never hold the lock. On NFS, Linux maps flock onto POSIX
byte-range locks that the server arbitrates across hosts (a crashed host's locks lapse with
its lease). A filesystem without locks makes acquiring fail with a message saying so.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import platform
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from .schema import TableError

__all__ = ["WHOLE", "Holder", "RangeLock", "TableLockError", "holders"]

log = logging.getLogger("lcsim.tabular")

REGISTRY = ".lcsim-lock"
HOLDERS = ".lcsim-locks"
WHOLE = (0, 2**63 - 1)  # every config id: merge, repair


class TableLockError(TableError):
    """Another live process holds an overlapping range of the table."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a range of a table."""

    host: str
    pid: int
    started: str  # ISO 8601, UTC
    range: tuple[int, int]  # ids a..b-1
    command: str

    def overlaps(self, r: tuple[int, int]) -> bool:
        return self.range[0] < r[1] and r[0] < self.range[1]

    def describe(self) -> str:
        a, b = self.range
        ids = "the whole table" if (a, b) == WHOLE else f"ids {a}..{b - 1}"
        return (f"{self.command!r} (pid {self.pid} on host {self.host}, started "
                f"{self.started}) holds {ids}")


def _check_range(r: tuple[int, int]) -> tuple[int, int]:
    a, b = int(r[0]), int(r[1])
    if not 0 <= a < b:
        raise ValueError(f"lock range must satisfy 0 <= a < b, got {a}:{b}")
    return a, b


def _command() -> str:
    """This process's command line, as the user typed it (`lcsim ...`, `python -m lcsim ...`)."""
    argv = sys.argv or ["python"]
    first = Path(argv[0])
    name = first.parent.name if first.name == "__main__.py" else first.name
    return " ".join([name or "python", *argv[1:]])


def _read_holder(path: Path) -> Holder | None:
    try:
        d = json.loads(path.read_text())
        return Holder(str(d["host"]), int(d["pid"]), str(d["started"]),
                      (int(d["range"][0]), int(d["range"][1])), str(d["command"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # being written, or left half-written by a holder that died


def _flock(fd: int, flags: int, path: Path) -> bool:
    """flock; False if another open file holds it (with LOCK_NB)."""
    try:
        fcntl.flock(fd, flags)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise TableError(f"{path}: this filesystem does not support file locks "
                             f"({e.strerror}); lcsim needs them to keep one writer per table "
                             "range. Write the table on a local disk or an NFS mount with "
                             "locking, then copy it") from None
        raise


class _Registry:
    """The registry flock, held while holders are added, checked or removed."""

    def __init__(self, d: Path):
        self.path = d / REGISTRY

    def __enter__(self) -> _Registry:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _flock(fd, fcntl.LOCK_EX, self.path)
                # the registry may have been removed (an empty table cleaned up) while we
                # waited: then our flock is on a dead inode; start again on the new file
                if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.fd = fd
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing releases the flock


def holders(directory: str | os.PathLike) -> list[Holder]:
    """Live holders of a table directory (stale files, whose process died, are skipped).

    Reads only: no registry lock, nothing created, so status works on a table the caller may
    not write (a holder appearing or leaving meanwhile may be missed: a snapshot)."""
    hdir = Path(directory) / HOLDERS
    if not hdir.is_dir():
        return []
    out = []
    for p in sorted(hdir.glob("*.json")):
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:  # released since the listing
            continue
        try:
            if _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, p):
                continue  # nobody holds it: stale
        finally:
            os.close(fd)
        h = _read_holder(p)
        if h is not None:
            out.append(h)
    return out


class RangeLock:
    """Exclusive lock on config ids a..b-1 of table directory `directory` (created if
    missing). Use as a context manager or call acquire() / release().

    `command` is what the holder is doing, shown to whoever is refused.
    """

    def __init__(self, directory: str | os.PathLike, ids: tuple[int, int] | range = WHOLE,
                 command: str | None = None):
        self.dir = Path(directory)
        if isinstance(ids, range):
            ids = (ids.start, ids.stop)
        self.range = _check_range(ids)
        self.command = command or _command()
        self._fd: int | None = None
        self._path: Path | None = None
        self._made_dir = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def covers(self, config_id: int) -> bool:
        return self.range[0] <= config_id < self.range[1]

    def acquire(self) -> RangeLock:
        if self._fd is not None:
            raise RuntimeError("RangeLock.acquire: already held")
        if self.dir.exists() and not self.dir.is_dir():
            raise TableError(f"{self.dir}: exists and is not a directory")
        self._made_dir = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            return self._acquire()
        except PermissionError as e:
            raise TableError(f"{self.dir}: cannot write its lock file ({e.strerror}); a "
                             "table is written in a directory this user may write to") from None

    def _acquire(self) -> RangeLock:
        hdir = self.dir / HOLDERS
        with _Registry(self.dir):
            hdir.mkdir(exist_ok=True)
            live = []
            for p in sorted(hdir.glob("*.json")):
                fd = os.open(p, os.O_RDWR)
                try:
                    if _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, p):
                        old = _read_holder(p)
                        log.warning("taking over a stale lock of %s: %s; its process is gone",
                                    self.dir, old.describe() if old else p.name)
                        p.unlink()
                        continue
                finally:
                    os.close(fd)
                h = _read_holder(p)
                if h is not None and h.overlaps(self.range):
                    live.append(h)
            if live:
                raise TableLockError(
                    f"{self.dir} is being written by another process: "
                    + "; ".join(h.describe() for h in live)
                    + ". Wait for it to finish (re-running the same command then resumes), "
                    "stop it, or give this run a disjoint --index-range")
            me = Holder(platform.node(), os.getpid(),
                        _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), self.range,
                        self.command)
            path = hdir / f"{uuid.uuid4().hex}.json"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, path)
                os.write(fd, json.dumps({"host": me.host, "pid": me.pid,
                                         "started": me.started, "range": list(me.range),
                                         "command": me.command}).encode())
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            self._fd, self._path, self.holder = fd, path, me
        return self

    def check(self) -> None:
        """Raise TableLockError unless this lock is held and its file is still in place (a
        commit calls this first, so a holder whose lock file was removed stops writing)."""
        if self._fd is None or self._path is None:
            raise TableLockError(f"{self.dir}: writing needs the table lock, which this "
                                 "process does not hold")
        try:
            same = os.stat(self._path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise TableLockError(f"{self._path}: this process's lock file was removed or "
                                 "replaced by another process; stopping before writing")

    def release(self) -> None:
        if self._fd is None:
            return
        with _Registry(self.dir):
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
            self._cleanup()

    def _cleanup(self) -> None:
        """With the registry held: the last holder out removes the lock files (a waiting
        acquirer notices the registry is gone and starts on a new one), and the directory
        too if this run made it and wrote nothing else into it."""
        hdir = self.dir / HOLDERS
        try:
            if hdir.is_dir() and not any(hdir.iterdir()):
                hdir.rmdir()
            if not hdir.exists():
                (self.dir / REGISTRY).unlink(missing_ok=True)
            if self._made_dir and not any(self.dir.iterdir()):
                self.dir.rmdir()
        except OSError:
            pass  # another process is using it: leave it

    def __enter__(self) -> RangeLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # the OS releases the flock anyway; this closes the descriptor early
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
