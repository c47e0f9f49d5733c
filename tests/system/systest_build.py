"""What the system tests boot and install: the .deb and a cached Debian root.

- ``ensure_deb``: dist/trendbotd_<version>_<arch>.deb, rebuilt with packaging/build-deb.sh
  only when a file it is built from is newer than it.
- ``ensure_root``: a Debian bookworm tree made by mmdebstrap, cached under
  /var/cache/trendbotd-systest/ and keyed by a hash of everything that shapes it
  (suite, package list, hooks, the apt sources it is built from). Concurrent sessions
  serialise on a lock file; a half-built tree is never visible under the final name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("TRENDBOTD_SYSTEST_CACHE", "/var/cache/trendbotd-systest"))
SUITE = "bookworm"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")

# Everything the .deb needs at install time (no network inside the container), plus what
# the tests use: systemd as PID 1, dbus for `systemd-analyze security`, procps for ps.
ROOT_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3.11", "procps")
ROOT_HOOKS = (
    # Timers that would grab the dpkg lock or churn in the middle of a test.
    'chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer'
    " e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer",
    # A fresh machine id each boot; no host name or resolver copied from the build host.
    'truncate -s0 "$1/etc/machine-id"; rm -f "$1/etc/hostname" "$1/etc/resolv.conf"',
)
ROOT_FORMAT = 1  # bump when the layout of the cache changes

# What the .deb is built from (packaging/build-deb.sh copies exactly these).
DEB_SOURCES = ("pyproject.toml", "README.md", "requirements", "trendbotd", "systemd", "debian")
DEB_PACKAGING = ("build-deb.sh", "build-venv.sh", "trendbotd.toml", "trendbotd.8")


@dataclass(frozen=True, slots=True)
class Built:
    path: Path
    seconds: float  # 0.0 when reused
    reused: bool


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def deb_path() -> Path:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    # PEP 440 pre-release -> Debian "~", exactly as packaging/build-deb.sh maps it.
    version = re.sub(r"^([0-9.]*[0-9])\.?((?:a|b|rc|dev)[0-9]*)", r"\1~\2", project_version())
    return REPO / "dist" / f"trendbotd_{version}_{arch}.deb"


def _newest_source_mtime() -> float:
    newest = 0.0
    paths = [REPO / p for p in DEB_SOURCES] + [REPO / "packaging" / p for p in DEB_PACKAGING]
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            newest = max(newest, f.stat().st_mtime)
    return newest


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_deb() -> Built:
    """The .deb under test: $TRENDBOTD_SYSTEST_DEB if set (a package built elsewhere),
    else dist/'s, rebuilt first when stale."""
    given = os.environ.get("TRENDBOTD_SYSTEST_DEB", "")
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"TRENDBOTD_SYSTEST_DEB={given}: no such file")
        return Built(Path(given), 0.0, reused=True)
    deb = deb_path()
    with _locked(REPO / "build" / ".systest-deb.lock"):
        if deb.exists() and deb.stat().st_mtime >= _newest_source_mtime():
            return Built(deb, 0.0, reused=True)
        start = time.monotonic()
        # lintian runs as its own test (test_package.py), not inside every build.
        env = {**os.environ, "LINTIAN": "0"}
        result = subprocess.run(
            [str(REPO / "packaging" / "build-deb.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not deb.exists():
            raise RuntimeError(
                f"packaging/build-deb.sh failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return Built(deb, time.monotonic() - start, reused=False)


def root_key() -> str:
    h = hashlib.sha256()
    sources = HOST_SOURCES.read_bytes() if HOST_SOURCES.exists() else b"default mirror"
    for part in (str(ROOT_FORMAT), SUITE, *ROOT_PACKAGES, *ROOT_HOOKS):
        h.update(part.encode() + b"\0")
    h.update(sources)
    return h.hexdigest()[:16]


def ensure_root() -> Built:
    target = CACHE_DIR / f"root-{SUITE}-{root_key()}"
    with _locked(CACHE_DIR / ".lock"):
        if (target / "usr" / "lib" / "systemd" / "systemd").exists():
            return Built(target, 0.0, reused=True)
        start = time.monotonic()
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(ROOT_PACKAGES)}",
            *(f"--customize-hook={hook}" for hook in ROOT_HOOKS),
            SUITE,
            str(partial),
        ]
        if HOST_SOURCES.exists():
            # The configured Debian mirror (deb822), as the host's apt uses it.
            command.append(str(HOST_SOURCES))
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-4000:]}")
        partial.rename(target)
        # Older roots (another key) are of no further use.
        for old in CACHE_DIR.glob(f"root-{SUITE}-*"):
            if old != target and not old.name.endswith(".partial"):
                shutil.rmtree(old, ignore_errors=True)
        return Built(target, time.monotonic() - start, reused=False)
