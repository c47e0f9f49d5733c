from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from trendbotd.config import Config, InstanceConfig
from trendbotd.errors import StatePathError
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.statedir import resolve_state_dir


def config(state_dir: Path | None = None, name: str = "bot") -> Config:
    return dataclasses.replace(Config(), instance=InstanceConfig(name=name, state_dir=state_dir))


def test_configured_dir_wins_and_is_created_private(tmp_path: Path) -> None:
    target = tmp_path / "cfg" / "state"
    chosen = resolve_state_dir(
        config(target), env={"STATE_DIRECTORY": str(tmp_path / "sd")}, system_dir=tmp_path / "sys"
    )
    assert (chosen.path, chosen.source) == (target, "config")
    assert target.is_dir()
    assert (target.stat().st_mode & 0o777) == 0o700
    assert chosen.journal_path("bot") == target / "bot.db"


def _blocked(tmp_path: Path, name: str) -> Path:
    """A directory path nobody can create, root included: its parent is a regular file."""
    blocker = tmp_path / f"{name}-is-a-file"
    blocker.write_text("x")
    return blocker / name


def test_unusable_configured_dir_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(StatePathError) as err:
        resolve_state_dir(config(_blocked(tmp_path, "state")), env={}, system_dir=tmp_path / "sys")
    assert err.value.exit_code == ExitCode.CANT_CREATE
    assert "instance.state_dir" in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_configured_dir_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StatePathError, match="not writable"):
        resolve_state_dir(config(locked), env={}, system_dir=tmp_path / "sys")


def test_configured_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StatePathError, match=r"not a directory|cannot create"):
        resolve_state_dir(config(blocker), env={}, system_dir=tmp_path / "sys")


def test_systemd_state_directory_before_system_dir(tmp_path: Path) -> None:
    sd = tmp_path / "sd"
    sd.mkdir()
    chosen = resolve_state_dir(
        config(),
        env={"STATE_DIRECTORY": f"{sd}:{tmp_path / 'second'}"},
        system_dir=tmp_path / "sys",
    )
    assert (chosen.path, chosen.source) == (sd, "STATE_DIRECTORY")


def test_system_dir_when_writable(tmp_path: Path) -> None:
    chosen = resolve_state_dir(config(), env={}, system_dir=tmp_path / "var-lib-trendbotd")
    assert chosen.source == "system"
    assert chosen.path.is_dir()


def _unwritable_system(tmp_path: Path) -> Path:
    return _blocked(tmp_path, "trendbotd")


def test_falls_back_to_xdg_then_home_then_cwd(tmp_path: Path) -> None:
    system = _unwritable_system(tmp_path)
    xdg = resolve_state_dir(
        config(), env={"XDG_STATE_HOME": str(tmp_path / "xdg")}, system_dir=system
    )
    assert (xdg.path, xdg.source) == (tmp_path / "xdg" / "trendbotd", "XDG_STATE_HOME")
    home = resolve_state_dir(config(), env={"HOME": str(tmp_path / "h")}, system_dir=system)
    assert (home.path, home.source) == (tmp_path / "h" / ".local" / "state" / "trendbotd", "home")
    cwd = resolve_state_dir(
        config(),
        env={"HOME": str(_blocked(tmp_path, "home"))},
        system_dir=system,
        cwd=tmp_path / "checkout",
    )
    assert (cwd.path, cwd.source) == (tmp_path / "checkout" / "var" / "lib", "cwd")


def test_status_lookup_finds_the_existing_journal_without_creating(tmp_path: Path) -> None:
    system = _unwritable_system(tmp_path)
    home = tmp_path / "h"
    cwd_dir = tmp_path / "checkout" / "var" / "lib"
    cwd_dir.mkdir(parents=True)
    (cwd_dir / "bot.db").write_bytes(b"")
    found = resolve_state_dir(
        config(),
        env={"HOME": str(home)},
        system_dir=system,
        cwd=tmp_path / "checkout",
        create=False,
    )
    assert found.source == "cwd"
    assert not home.exists()  # nothing was created on the way


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StatePathError, match="no usable state directory"):
        resolve_state_dir(
            config(),
            env={"HOME": str(_blocked(tmp_path, "home"))},
            system_dir=_unwritable_system(tmp_path),
            cwd=_blocked(tmp_path, "cwd"),
        )
