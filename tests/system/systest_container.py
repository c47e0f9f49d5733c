"""A real systemd booted in systemd-nspawn, and the means to act inside it.

The host's PID 1 is not systemd and there is no system bus, so (see the shared notes on
real systemd in tests):

- nspawn runs with ``--register=no --keep-unit`` from a cgroup this module creates
  (in every hierarchy: cgroup2 and, on a hybrid host, ``name=systemd``). Teardown kills
  exactly that cgroup (``cgroup.kill``) and removes it, whatever state the test left.
- ``--volatile=overlay`` over the cached read-only root: each boot starts pristine.
- ``--private-network``: the container has loopback only.
- Commands run through ``nsenter`` into the container's namespaces with a clean
  environment (``env -i``), from a leaf of the same cgroup, so they die with it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIX = "trendbotd-systest"
CLEAN_ENV = (
    "env",
    "-i",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "TERM=dumb",
    "SYSTEMD_COLORS=0",
    "SYSTEMD_PAGER=",
)
# Inside the container: "echo $$ > procs..." is done by the host-side sh before nsenter.
_JOIN_CGROUP = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f"; done; ' + (
    'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
)

T = TypeVar("T")


class CommandFailedError(AssertionError):
    pass


def cgroup_hierarchies() -> list[Path]:
    """Where our cgroup goes: the cgroup2 tree, plus name=systemd on a hybrid host."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure cgroup2
        return [CGROUP_ROOT]
    found = [CGROUP_ROOT / "unified"] if (CGROUP_ROOT / "unified").is_dir() else []
    if (CGROUP_ROOT / "systemd" / "cgroup.procs").exists():
        found.append(CGROUP_ROOT / "systemd")
    return found


def why_cannot_boot() -> str | None:
    """None when this host can boot a container, else the reason (for a visible skip)."""
    if os.geteuid() != 0:
        return "system tests need root (systemd-nspawn, cgroups, nsenter)"
    missing = [
        tool
        for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "dpkg-buildpackage")
        if not any((Path(d) / tool).exists() for d in ("/usr/bin", "/usr/sbin", "/bin"))
    ]
    if missing:
        return f"missing {', '.join(missing)}: run packaging/install-build-deps.sh"
    hierarchies = cgroup_hierarchies()
    if not hierarchies or not os.access(hierarchies[0], os.W_OK):
        return "no writable cgroup2 hierarchy to run systemd-nspawn from"
    if not Path("/proc/filesystems").read_text().count("overlay"):
        return "the kernel has no overlayfs (needed by --volatile=overlay)"
    return None


def wait_until(probe: Callable[[], T], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until ``probe()`` is truthy; return it. AssertionError names ``what``."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)
        last = probe()
    return last


@dataclass
class Cgroup:
    name: str
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, name: str) -> Cgroup:
        group = cls(name, [h / name for h in cgroup_hierarchies()])
        for d in group.dirs:
            d.mkdir()
            (d / "exec").mkdir()  # leaf for the processes nsenter starts
        return group

    def procs_files(self, leaf: str = "") -> list[str]:
        return [
            str(d / leaf / "cgroup.procs") if leaf else str(d / "cgroup.procs") for d in self.dirs
        ]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            for procs in d.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return found

    def kill(self, *, timeout: float = 20.0) -> None:
        unified = self.dirs[0]
        deadline = time.monotonic() + timeout
        while self.pids():
            if (unified / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (unified / "cgroup.kill").write_text("1")
            for pid in self.pids():  # older kernels, and the name=systemd hierarchy
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"cgroup {self.name}: processes survive SIGKILL: {self.pids()}")
            time.sleep(0.05)

    def remove(self) -> None:
        for d in self.dirs:
            if not d.exists():
                continue
            for sub, _dirs, _files in sorted(os.walk(d, topdown=False), key=lambda w: -len(w[0])):
                with contextlib.suppress(FileNotFoundError):
                    Path(sub).rmdir()


def remove_stale_cgroups() -> list[str]:
    """Containers of test sessions that died without teardown (their PID is gone)."""
    removed = []
    for hierarchy in cgroup_hierarchies():
        for d in hierarchy.glob(f"{NAME_PREFIX}-*"):
            owner = d.name.split("-")[2] if d.name.count("-") >= 3 else ""
            if owner.isdigit() and Path(f"/proc/{owner}").exists():
                continue
            group = Cgroup(d.name, [h / d.name for h in cgroup_hierarchies()])
            group.kill()
            group.remove()
            removed.append(d.name)
    return removed


class Container:
    """One booted container. Use ``Container.boot(...)``; always ``teardown()``."""

    _counter = 0

    def __init__(
        self, *, name: str, cgroup: Cgroup, launcher: subprocess.Popen[bytes], console: Path
    ):
        self.name = name
        self.cgroup = cgroup
        self.launcher = launcher
        self.console = console
        self.init_pid = 0
        self.boot_seconds = 0.0

    @classmethod
    def boot(cls, root: Path, *, log_dir: Path, timeout: float = 60.0) -> Container:
        cls._counter += 1
        name = f"{NAME_PREFIX}-{os.getpid()}-{cls._counter}"
        console = log_dir / f"{name}.console.log"
        start = time.monotonic()
        cgroup = Cgroup.create(name)
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--private-network",
            "--console=read-only",
            f"--directory={root}",
            f"--machine={name}",
            f"--hostname=systest{cls._counter}",
        ]
        with console.open("wb") as out:
            launcher = subprocess.Popen(
                ["sh", "-c", _JOIN_CGROUP, "sh", *cgroup.procs_files(), "--", *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        container = cls(name=name, cgroup=cgroup, launcher=launcher, console=console)
        try:
            container._wait_booted(timeout)
        except BaseException:
            container.teardown()
            raise
        container.boot_seconds = time.monotonic() - start
        return container

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.init_pid = wait_until(
            self._find_init, timeout=timeout, what=f"{self.name}: the container's PID 1"
        )

        def state() -> str:
            # Until systemd has set up the container, nsenter may land in namespaces that
            # are not finished and systemctl cannot connect yet: ask again.
            left = max(1.0, deadline - time.monotonic())
            result = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=left)
            return result.stdout.strip()

        found = wait_until(state, timeout=timeout, what=f"{self.name}: systemd up")
        if found not in ("running", "degraded"):
            raise RuntimeError(f"{self.name}: system state {found!r}\n{self.console_tail()}")

    def _find_init(self) -> int:
        if self.launcher.poll() is not None:
            raise RuntimeError(
                f"systemd-nspawn exited with {self.launcher.returncode}\n{self.console_tail()}"
            )
        for task in Path(f"/proc/{self.launcher.pid}/task").glob("*/children"):
            for child in task.read_text().split():
                status = Path(f"/proc/{child}/status").read_text()
                nspid = next(
                    (ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), []
                )
                name = Path(f"/proc/{child}/comm").read_text().strip()
                if nspid and nspid[-1] == "1" and name == "systemd":
                    return int(child)
        return 0

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def teardown(self) -> None:
        try:
            self.cgroup.kill()
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.launcher.wait(timeout=10)
            self.cgroup.remove()

    # --- acting inside ---

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container as root with a clean environment."""
        nsenter = (
            "nsenter",
            "-t",
            str(self.init_pid),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "-C",
            "-r",
            "-w",
        )
        full = ["sh", "-c", _JOIN_CGROUP, "sh", *self.cgroup.procs_files("exec"), "--"]
        full += [*nsenter, *CLEAN_ENV, *argv]
        try:
            result = subprocess.run(
                full,
                input=input,
                # CI has no standard input at all; never let a command wait on ours.
                stdin=subprocess.DEVNULL if input is None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise CommandFailedError(f"timed out after {timeout:g} s: {' '.join(argv)}") from e
        if check and result.returncode != 0:
            raise CommandFailedError(
                f"exit {result.returncode}: {' '.join(argv)}\n"
                f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-ec", script, **kwargs)  # type: ignore[arg-type]

    def path(self, inside: str) -> Path:
        """The container's file ``inside`` as seen from the host (through its root)."""
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, *, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def exists(self, inside: str) -> bool:
        return self.path(inside).exists() or self.path(inside).is_symlink()

    # --- systemd helpers ---

    def show(self, unit: str, *props: str) -> dict[str, str]:
        args = [a for p in props for a in ("-p", p)]
        out = self.run("systemctl", "show", unit, *args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name).get(name, "")

    def is_active(self, unit: str) -> str:
        return self.run("systemctl", "is-active", unit, check=False).stdout.strip()

    def journal_cursor(self) -> str:
        """A mark for ``journal(after=...)``: the sequence number of the newest entry."""
        out = self.run("journalctl", "-n", "1", "-o", "json", "--no-pager").stdout.strip()
        return str(_seqnum(json.loads(out.splitlines()[-1]))) if out else "0"

    def journal(self, *args: str, after: str = "") -> list[dict[str, object]]:
        """Journal entries as dicts (``-o json``), newer than the mark ``after`` if given.

        Filtered here rather than with --after-cursor: journalctl 252 drops the first
        matching entry when the cursor's own entry does not match the filters."""
        out = self.run("journalctl", "--no-pager", "-o", "json", *args).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        mark = int(after or 0)
        return [e for e in entries if _seqnum(e) > mark]

    def messages(self, *args: str, after: str = "") -> list[str]:
        return [message_text(e) for e in self.journal(*args, after=after)]


def _seqnum(entry: dict[str, object]) -> int:
    """The entry's sequence number, from its cursor (``...;i=<hex>;...``)."""
    fields = dict(part.split("=", 1) for part in str(entry["__CURSOR"]).split(";"))
    return int(fields["i"], 16)


def message_text(entry: dict[str, object]) -> str:
    raw = entry.get("MESSAGE", "")
    if isinstance(raw, list):  # journalctl gives non-UTF-8 messages as byte arrays
        return bytes(raw).decode("utf-8", errors="replace")
    return str(raw)


@contextlib.contextmanager
def booted(root: Path, *, log_dir: Path) -> Iterator[Container]:
    container = Container.boot(root, log_dir=log_dir)
    try:
        yield container
    finally:
        container.teardown()


def nrestarts(container: Container, unit: str) -> int:
    return int(container.prop(unit, "NRestarts") or 0)


def joined(lines: Sequence[str]) -> str:
    return "\n".join(lines)
