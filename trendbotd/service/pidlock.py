"""The single-instance lock: an ``flock``ed PID file. The only module that uses fcntl.

Semantics the rest of the daemon relies on:

- ``flock`` belongs to the open file description, so the lock survives ``fork`` (the
  ``--daemon`` launcher takes it and the detached daemon inherits it) and the kernel drops
  it when the last descriptor closes: a file left behind by a SIGKILLed holder never blocks.
- The file is opened with O_NOFOLLOW and must be a regular file with one link, owned by
  us: a symlink or a planted file is refused and left untouched.
- After ``flock`` the path must still name the inode we locked (a holder that exits
  cleanly unlinks the file while still holding the lock); otherwise we retry.
- The PID is written only once the lock is held; readers of a not-yet-written file wait
  briefly for it instead of reporting an anonymous holder.

A refused duplicate runs this module and little else, so it imports no more than it
needs: NamedTuples rather than dataclasses, /proc rather than psutil, logging only on the
one path that logs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from trendbotd.errors import InstanceLockedError, LockPathError

DEFAULT_RUNTIME_DIR = Path("/run/trendbotd")

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_REOPEN = 10  # inode changed under us this often in a row: something is racing us
_PID_WAIT_S = 0.5  # how long a loser waits for the winner to write its PID


class LockLocation(NamedTuple):
    path: Path
    source: str  # why this directory: "config", "RUNTIME_DIRECTORY", "default", fallbacks


def resolve_lock_path(
    name: str,
    runtime_dir: Path | None,
    *,
    env: Mapping[str, str],
    euid: int,
    cwd: Path,
    create: bool = True,
    default_dir: Path = DEFAULT_RUNTIME_DIR,
) -> LockLocation:
    """Pick the lock directory and (``create=True``) create it when missing.

    Never touches the lock file itself. ``status`` passes ``create=False``.
    """

    def ensure(directory: Path, mode: int) -> None:
        if create:
            _ensure_dir(directory, mode=mode)

    filename = f"{name}.pid"
    if runtime_dir is not None:
        directory = runtime_dir if runtime_dir.is_absolute() else cwd / runtime_dir
        ensure(directory, 0o755)
        return LockLocation(directory / filename, "config instance.runtime_dir")
    systemd_dir = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if systemd_dir:
        return LockLocation(Path(systemd_dir) / filename, "$RUNTIME_DIRECTORY")
    if euid == 0 or _writable_dir(default_dir):
        ensure(default_dir, 0o755)
        return LockLocation(default_dir / filename, "default")
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and Path(xdg).is_absolute() and _writable_dir(Path(xdg)):
        directory = Path(xdg) / "trendbotd"
        ensure(directory, 0o700)
        return LockLocation(directory / filename, f"$XDG_RUNTIME_DIR ({default_dir} not writable)")
    directory = cwd / "var" / "run"
    ensure(directory, 0o755)
    return LockLocation(directory / filename, f"./var/run ({default_dir} not writable)")


def existing_lock_location(name: str, runtime_dir: Path | None) -> LockLocation:
    """Where this process's environment puts the lock, creating nothing (status, resume,
    halt and flatten only look)."""
    return resolve_lock_path(
        name, runtime_dir, env=os.environ, euid=os.geteuid(), cwd=Path.cwd(), create=False
    )


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _ensure_dir(path: Path, *, mode: int) -> None:
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as e:
        raise LockPathError(f"{path}: cannot create the lock directory: {e.strerror}") from e
    if not path.is_dir():
        raise LockPathError(f"{path}: lock directory is not a directory")


class PidLock:
    """The instance lock. Also a context manager usable as python-daemon's ``pidfile=``:
    ``__enter__`` takes the lock if not yet held, then (re)writes the current PID."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def fileno(self) -> int:
        if self._fd is None:
            raise RuntimeError("lock not held")
        return self._fd

    def acquire(self) -> None:
        """Take the lock and write our PID. Raises InstanceLockedError or LockPathError."""
        if self._fd is not None:
            return
        for _ in range(_MAX_REOPEN):
            fd = _open_checked(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                message = describe_holder(fd, self.path)
                os.close(fd)
                raise InstanceLockedError(message) from None
            except OSError as e:
                os.close(fd)
                raise LockPathError(f"{self.path}: cannot lock: {e.strerror}") from e
            if _same_file(fd, self.path):
                self._fd = fd
                self.write_pid()
                return
            # The previous holder unlinked the file between our open and flock: the lock
            # we got is on an orphaned inode that nobody else will ever look at.
            os.close(fd)
        raise LockPathError(f"{self.path}: the lock file keeps being replaced; refusing to start")

    def write_pid(self) -> None:
        """Record the current process (after detaching, the daemon's PID, not the launcher's)."""
        fd = self.fileno()
        data = f"{os.getpid()}\n".encode()
        # Write first, then cut: a reader never sees an empty file once a PID was there.
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def release(self) -> None:
        """Clean exit: unlink the file while still holding the lock, then drop it."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        except OSError as e:
            # Leaving the file is harmless (the next start locks it again); losing the
            # unlock is not, so the descriptor is closed whatever happens here.
            import logging  # noqa: PLC0415 - kept off the duplicate's path (module docstring)

            logging.getLogger(__name__).warning(
                "lock.unlink_failed path=%s error=%s", self.path, e.strerror
            )
        finally:
            os.close(fd)

    def forget(self) -> None:
        """Close our descriptor without unlocking or unlinking (the launcher after fork: the
        daemon shares the open file description and keeps the lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> PidLock:
        if self._fd is None:
            self.acquire()
        else:
            self.write_pid()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _open_checked(path: Path) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LockPathError(f"{path}: lock path is a symlink; refusing to follow it") from e
        raise LockPathError(f"{path}: cannot open the lock file: {e.strerror}") from e
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif st.st_uid != os.geteuid():
        problem = f"is owned by uid {st.st_uid}, not by us (uid {os.geteuid()})"
    elif st.st_nlink != 1:
        problem = f"has {st.st_nlink} hard links"
    if problem is not None:
        _refuse_unless_held(fd, path)
        raise LockPathError(f"{path}: lock file {problem}; refusing to use it")
    return fd


def _refuse_unless_held(fd: int, path: Path) -> None:
    """A file we will not use may still be locked by a live instance (started as another
    user): then the truthful answer is "already running", naming the holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        message = describe_holder(fd, path)
        os.close(fd)
        raise InstanceLockedError(message) from None
    except OSError:
        pass  # not lockable either: the path problem below is the answer
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.lstat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _read_pid(fd: int) -> int | None:
    raw = os.pread(fd, 64, 0).split(b"\n", 1)[0].strip()
    return int(raw) if raw.isdigit() else None


def describe_holder(fd: int, path: Path) -> str:
    """One line naming the process that holds the lock on ``fd`` (PID, command, start)."""
    deadline = time.monotonic() + _PID_WAIT_S
    pid = _read_pid(fd)
    while pid is None and time.monotonic() < deadline:
        time.sleep(0.005)  # the winner writes its PID right after flock
        pid = _read_pid(fd)
    if pid is None:
        return f"already running: lock {path} is held by a process that has not written its PID"
    return f"already running: {describe_process(pid)}, lock {path}"


def describe_process(pid: int) -> str:
    """``PID n (command line), started <time>`` from /proc, or why that is unknown.

    Read directly rather than through psutil: this is what a refused duplicate prints,
    and importing psutil would double the time it takes to say so."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text(encoding="ascii", errors="replace")
        started = time.strftime(
            "%Y-%m-%d %H:%M:%S %Z", time.localtime(_boot_time() + _start_ticks(stat) / _CLK_TCK)
        )
    except (FileNotFoundError, ProcessLookupError):
        if _exists_hidden(pid):
            return f"PID {pid} (details not visible to us)"
        return f"PID {pid} (no longer exists; a process that inherited its lock still holds it)"
    except PermissionError:
        return f"PID {pid} (details not visible to us)"
    try:
        raw = (proc / "cmdline").read_bytes()
    except OSError:  # hidden from us (or gone since): the name from stat is still true
        raw = b""
    command = " ".join(a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0"))
    return f"PID {pid} ({command.strip() or _comm(stat)}), started {started}"


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _comm(stat: str) -> str:
    # "1234 (name with (parens) or spaces) S 1 ...": the name ends at the last ')'
    return stat[stat.find("(") + 1 : stat.rfind(")")]


def _start_ticks(stat: str) -> int:
    """Field 22 of /proc/<pid>/stat (proc(5)): start time in clock ticks after boot."""
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def _boot_time() -> float:
    with Path("/proc/stat").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise FileNotFoundError("/proc/stat has no btime")


def _exists_hidden(pid: int) -> bool:
    """A live process /proc does not show us (hidepid=): signal 0 says EPERM, not ESRCH."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


class HolderInfo(NamedTuple):
    pid: int | None  # from the file, else from /proc/locks
    description: str


def query_holder(path: Path) -> HolderInfo | None:
    """Who holds the lock at ``path``, without taking it (``status`` must never make a
    starting daemon fail). None when nobody holds it. Reads /proc/locks (Linux)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise LockPathError(f"{path}: cannot open the lock file: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        locker = _flock_owner(st.st_dev, st.st_ino)
        if locker is None:
            return None
        pid = _read_pid(fd) or locker
        if not pid:
            return HolderInfo(None, f"held by an unknown process (lock {path})")
        return HolderInfo(pid, describe_process(pid))
    finally:
        os.close(fd)


def _flock_owner(dev: int, ino: int) -> int | None:
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    with Path("/proc/locks").open(encoding="ascii", errors="replace") as f:
        for line in f:
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 7444 fe:00:2146341 0 EOF" (blocked waiters: "->")
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                return int(fields[4]) if fields[4].isdigit() else 0
    return None
