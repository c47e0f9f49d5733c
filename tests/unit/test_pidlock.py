"""The instance lock on its own: acquisition, refusal of unsafe paths, holder description,
path resolution, the non-intrusive query used by ``status``."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from trendbotd.errors import InstanceLockedError, LockPathError
from trendbotd.service import pidlock
from trendbotd.service.pidlock import PidLock, query_holder, resolve_lock_path


def test_acquire_writes_pid_and_release_unlinks(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    lock = PidLock(path)
    lock.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0  # never group/world writable
    assert lock.held
    lock.release()
    assert not path.exists()
    assert not lock.held
    lock.release()  # idempotent


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    first = PidLock(path)
    first.acquire()
    try:
        with pytest.raises(InstanceLockedError) as info:
            PidLock(path).acquire()
        message = str(info.value)
        assert message.startswith(f"already running: PID {os.getpid()} (")
        assert "started " in message and str(path) in message
        assert "\n" not in message
        assert path.read_text() == f"{os.getpid()}\n"  # the loser did not touch the file
    finally:
        first.release()


def test_stale_file_from_a_dead_holder_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    path.write_text("999999999\nleftover junk that is longer than a pid\n")
    lock = PidLock(path)
    lock.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_symlink_is_refused_and_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep\n")
    path = tmp_path / "a.pid"
    path.symlink_to(target)
    with pytest.raises(LockPathError, match="symlink"):
        PidLock(path).acquire()
    assert target.read_text() == "keep\n"
    assert path.is_symlink()


def test_dangling_symlink_is_refused_and_nothing_created(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    path.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(LockPathError, match="symlink"):
        PidLock(path).acquire()
    assert not (tmp_path / "would-be-created").exists()


def test_hard_linked_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("data\n")
    path = tmp_path / "a.pid"
    os.link(other, path)
    with pytest.raises(LockPathError, match="hard links"):
        PidLock(path).acquire()
    assert other.read_text() == "data\n"


def test_directory_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    path.mkdir()
    with pytest.raises(LockPathError):
        PidLock(path).acquire()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    path.write_text("1\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(LockPathError, match="owned by uid 65534"):
        PidLock(path).acquire()
    assert path.read_text() == "1\n"


def test_file_replaced_between_open_and_flock_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that exits cleanly unlinks the file; whoever locked the old inode retries."""
    path = tmp_path / "a.pid"
    real_flock = fcntl.flock
    calls = []

    def racing_flock(fd: int, op: int) -> None:
        if not calls:  # first attempt: someone unlinks and recreates the file meanwhile
            path.unlink()
            path.write_text("")
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(pidlock.fcntl, "flock", racing_flock)
    lock = PidLock(path)
    lock.acquire()
    assert len(calls) == 2
    st, fst = path.stat(), os.fstat(lock.fileno())
    assert (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"", "has not written its PID", id="holder-has-not-written-its-pid-yet"),
        # above pid_max: certainly not running
        pytest.param(b"999999999\n", "PID 999999999 \\(no longer exists", id="pid-is-gone"),
    ],
)
def test_a_held_lock_names_what_its_file_says(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "a.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, content)
    try:
        with pytest.raises(InstanceLockedError, match=reason):
            PidLock(path).acquire()
    finally:
        os.close(fd)


def test_context_manager_takes_lock_or_rewrites_pid(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    with PidLock(path) as lock:
        assert lock.held
        path.write_text("garbage\n")
        lock.__enter__()  # what python-daemon does after detaching: record the current PID
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_forget_keeps_the_file_and_a_shared_lock(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    lock = PidLock(path)
    lock.acquire()
    twin = os.dup(lock.fileno())  # same open file description, as a forked daemon has
    lock.forget()
    try:
        assert path.exists()
        with pytest.raises(InstanceLockedError):
            PidLock(path).acquire()
    finally:
        os.close(twin)
    again = PidLock(path)
    again.acquire()  # last descriptor closed: the kernel dropped the lock
    again.release()


def test_query_holder_does_not_take_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "a.pid"
    assert query_holder(path) is None
    path.write_text("12345\n")
    assert query_holder(path) is None  # a file, but nobody holds it
    lock = PidLock(path)
    lock.acquire()
    try:
        info = query_holder(path)
        assert info is not None
        assert info.pid == os.getpid()
        assert info.description.startswith(f"PID {os.getpid()} (")
    finally:
        lock.release()


# --- where the lock lives ---


def test_path_from_config_wins(tmp_path: Path) -> None:
    loc = resolve_lock_path(
        "bot",
        tmp_path / "cfg",
        env={"RUNTIME_DIRECTORY": str(tmp_path / "sd")},
        euid=1000,
        cwd=tmp_path,
    )
    assert loc.path == tmp_path / "cfg" / "bot.pid"
    assert (tmp_path / "cfg").is_dir()


def test_relative_config_dir_is_relative_to_cwd(tmp_path: Path) -> None:
    loc = resolve_lock_path("bot", Path("rel"), env={}, euid=1000, cwd=tmp_path)
    assert loc.path == tmp_path / "rel" / "bot.pid"


def test_systemd_runtime_directory(tmp_path: Path) -> None:
    env = {"RUNTIME_DIRECTORY": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    loc = resolve_lock_path("bot", None, env=env, euid=0, cwd=tmp_path)
    assert loc.path == tmp_path / "a" / "bot.pid"
    assert "RUNTIME_DIRECTORY" in loc.source


def test_root_uses_the_default_dir(tmp_path: Path) -> None:
    default = tmp_path / "run" / "trendbotd"
    loc = resolve_lock_path("bot", None, env={}, euid=0, cwd=tmp_path, default_dir=default)
    assert loc.path == default / "bot.pid"
    assert loc.source == "default"


def test_non_root_falls_back_to_xdg_then_cwd(tmp_path: Path) -> None:
    default = tmp_path / "not-there" / "trendbotd"
    (tmp_path / "not-there").mkdir(mode=0o555)
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    loc = resolve_lock_path(
        "bot", None, env={"XDG_RUNTIME_DIR": str(xdg)}, euid=1000, cwd=tmp_path, default_dir=default
    )
    assert loc.path == xdg / "trendbotd" / "bot.pid"
    assert "XDG_RUNTIME_DIR" in loc.source and "not writable" in loc.source
    loc = resolve_lock_path("bot", None, env={}, euid=1000, cwd=tmp_path, default_dir=default)
    assert loc.path == tmp_path / "var" / "run" / "bot.pid"
    assert loc.source.startswith("./var/run")


def test_status_resolution_creates_nothing(tmp_path: Path) -> None:
    loc = resolve_lock_path("bot", tmp_path / "cfg", env={}, euid=1000, cwd=tmp_path, create=False)
    assert loc.path == tmp_path / "cfg" / "bot.pid"
    assert not (tmp_path / "cfg").exists()
