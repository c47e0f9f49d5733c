"""Where the journal lives: ``<state_dir>/<instance>.db``.

Order of preference (the first usable one wins, and the caller logs which):
1. ``instance.state_dir`` from the config (an error if unusable: never silently elsewhere);
2. ``$STATE_DIRECTORY`` (systemd's StateDirectory=; the first entry if several);
3. ``/var/lib/trendbotd`` when it is (or can be made) writable;
4. ``$XDG_STATE_HOME/trendbotd``, default ``~/.local/state/trendbotd``;
5. ``./var/lib`` under the working directory (a checkout run by anyone).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trendbotd.config import Config
from trendbotd.errors import StatePathError

logger = logging.getLogger(__name__)

SYSTEM_STATE_DIR = Path("/var/lib/trendbotd")


@dataclass(frozen=True, slots=True)
class StateDir:
    path: Path
    source: str  # "config", "STATE_DIRECTORY", "system", "XDG_STATE_HOME", "home", "cwd"

    def journal_path(self, instance: str) -> Path:
        return self.path / f"{instance}.db"


def resolve_state_dir(
    config: Config,
    *,
    env: Mapping[str, str] | None = None,
    system_dir: Path = SYSTEM_STATE_DIR,
    home: Path | None = None,
    cwd: Path | None = None,
    create: bool = True,
) -> StateDir:
    """Pick the state directory; with ``create`` make it (mode 0700) if missing.

    ``create=False`` (``trendbotd status``) picks the first candidate that already holds
    this instance's journal, else the one the daemon would use.
    """
    environ = os.environ if env is None else env
    configured = config.instance.state_dir
    if configured is not None:
        path = Path(configured)
        if create:
            _ensure_dir(path, source="instance.state_dir")
        return StateDir(path, "config")
    candidates = _candidates(environ, system_dir=system_dir, home=home, cwd=cwd)
    if not create:
        name = f"{config.instance.name}.db"
        for candidate in candidates:
            if (candidate.path / name).exists():
                return candidate
    for candidate in candidates:
        if _usable(candidate.path, create=create):
            return candidate
    tried = ", ".join(str(c.path) for c in candidates)
    raise StatePathError(f"no usable state directory for the journal (tried {tried})")


def _candidates(
    environ: Mapping[str, str], *, system_dir: Path, home: Path | None, cwd: Path | None
) -> list[StateDir]:
    out: list[StateDir] = []
    systemd_dir = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd_dir:
        out.append(StateDir(Path(systemd_dir), "STATE_DIRECTORY"))
    out.append(StateDir(system_dir, "system"))
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        out.append(StateDir(Path(xdg) / "trendbotd", "XDG_STATE_HOME"))
    else:
        base = home if home is not None else _home(environ)
        if base is not None:
            out.append(StateDir(base / ".local" / "state" / "trendbotd", "home"))
    out.append(StateDir((cwd if cwd is not None else Path.cwd()) / "var" / "lib", "cwd"))
    return out


def _home(environ: Mapping[str, str]) -> Path | None:
    value = environ.get("HOME", "")
    return Path(value) if value else None


def _usable(path: Path, *, create: bool) -> bool:
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK)
    if not create:
        return _creatable(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        logger.debug("statedir.skip path=%s error=%s", path, e)
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _creatable(path: Path) -> bool:
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            return False
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _ensure_dir(path: Path, *, source: str) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise StatePathError(f"{source} {path}: cannot create: {e.strerror}") from e
    if not path.is_dir():
        raise StatePathError(f"{source} {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StatePathError(f"{source} {path} is not writable by uid {os.getuid()}")
