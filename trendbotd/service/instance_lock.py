"""The instance lock taken from the raw configuration, before the rest is even imported.

A duplicate launch must be refused in the time it takes to start Python: this reads only
the ``[instance]`` table (stdlib tomllib) and imports nothing beyond the lock itself.
Whenever that table is not plainly valid, ``read_instance`` answers None and the caller
validates the whole file first, exactly as without this shortcut, so a broken config
still gets its line-numbered error (exit 78). The rest of the file is validated once the
lock is held; ``matches`` lets the caller check that it names the same lock.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import NamedTuple

from trendbotd.service.pidlock import LockLocation, PidLock, resolve_lock_path

# The same values as trendbotd.config (which costs more to import than the rest of a
# refused start together); tests/unit/test_instance_lock.py keeps them equal.
DEFAULT_CONFIG_PATH = Path("/etc/trendbotd/trendbotd.toml")
DEFAULT_NAME = "trendbotd"
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_KEYS = frozenset({"name", "runtime_dir", "state_dir"})


class InstanceKey(NamedTuple):
    """What picks the lock file: the instance name and the configured runtime directory."""

    name: str
    runtime_dir: Path | None


def read_instance(path: Path | None) -> InstanceKey | None:
    """The lock-relevant part of the config at ``path`` (None: the default path if it
    exists, else the defaults), or None when anything about it needs the full validation."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return InstanceKey(DEFAULT_NAME, None)
        path = DEFAULT_CONFIG_PATH
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = raw.get("instance", {})
    if not isinstance(table, dict) or not set(table) <= _KEYS:
        return None
    name = table.get("name", DEFAULT_NAME)
    runtime_dir = table.get("runtime_dir")
    if not isinstance(name, str) or not INSTANCE_NAME.match(name):
        return None
    if runtime_dir is not None and not (isinstance(runtime_dir, str) and runtime_dir):
        return None
    return InstanceKey(name, Path(runtime_dir) if runtime_dir is not None else None)


def matches(key: InstanceKey, *, name: str, runtime_dir: Path | None) -> bool:
    """Does the validated config name the lock that ``key`` found?"""
    return key == InstanceKey(name, runtime_dir)


def take_lock(key: InstanceKey) -> tuple[PidLock, LockLocation]:
    """Raises InstanceLockedError (75, naming the holder) or LockPathError (73)."""
    location = resolve_lock_path(
        key.name, key.runtime_dir, env=os.environ, euid=os.geteuid(), cwd=Path.cwd()
    )
    lock = PidLock(location.path)
    lock.acquire()
    return lock, location
