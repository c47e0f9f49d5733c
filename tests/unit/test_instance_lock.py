"""``run`` takes the lock from the raw [instance] table before importing the rest: the
shortcut agrees with the full configuration, falls back to it whenever in doubt, and a
refused duplicate imports neither the config schema nor logging nor psutil."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trendbotd import cli, config
from trendbotd.errors import ConfigError
from trendbotd.exitcodes import ExitCode
from trendbotd.service import lifecycle as app
from trendbotd.service import pidlock
from trendbotd.service.instance_lock import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_NAME,
    INSTANCE_NAME,
    InstanceKey,
    read_instance,
)
from trendbotd.service.pidlock import PidLock, describe_process

REPO = Path(__file__).resolve().parents[2]


def test_the_shortcut_uses_the_config_modules_values() -> None:
    assert DEFAULT_CONFIG_PATH == config.DEFAULT_CONFIG_PATH
    assert config.InstanceConfig().name == DEFAULT_NAME
    assert INSTANCE_NAME.pattern == config._INSTANCE_NAME.pattern
    assert config.InstanceConfig().runtime_dir is None


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("", InstanceKey("trendbotd", None)),
        ('[instance]\nname = "a.b-c_1"\n', InstanceKey("a.b-c_1", None)),
        (
            '[instance]\nruntime_dir = "run"\nstate_dir = "s"\n',
            InstanceKey(DEFAULT_NAME, Path("run")),
        ),
        ('[instance]\nname = "x"\n[risk]\nrisk_per_trad = 1\n', InstanceKey("x", None)),
        # anything doubtful in [instance] itself: the full validation goes first
        ("[instance\n", None),
        ('[instance]\nname = "../etc"\n', None),
        ('[instance]\nname = ""\n', None),
        ("[instance]\nname = 7\n", None),
        ('[instance]\nruntime_dir = ""\n', None),
        ("[instance]\nruntime_dir = 1\n", None),
        ('[instance]\nnmae = "typo"\n', None),
        ('instance = "not a table"\n', None),
    ],
)
def test_read_instance(tmp_path: Path, body: str, key: InstanceKey | None) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    assert read_instance(path) == key
    if key is None:
        return
    try:
        full = config.load_config(path)
    except ConfigError:
        return  # invalid elsewhere: refused after the lock
    assert key == InstanceKey(full.instance.name, full.instance.runtime_dir)


def test_read_instance_of_unreadable_files(tmp_path: Path) -> None:
    assert read_instance(tmp_path / "missing.toml") is None
    assert read_instance(tmp_path) is None  # a directory
    (tmp_path / "latin1.toml").write_bytes(b'[instance]\nname = "caf\xe9"\n')
    assert read_instance(tmp_path / "latin1.toml") is None


def _config(tmp_path: Path, name: str = "unit") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[instance]\nname = "{name}"\nruntime_dir = "{tmp_path / "run"}"\n')
    return path


def test_a_refused_duplicate_imports_only_the_lock(tmp_path: Path) -> None:
    path = _config(tmp_path)
    (tmp_path / "run").mkdir()
    holder = PidLock(tmp_path / "run" / "unit.pid")
    holder.acquire()
    heavy = [
        "trendbotd.config",
        "trendbotd.service.lifecycle",
        "psutil",
        "logging",
        "dataclasses",
        "daemon",
    ]
    probe = (
        "import sys\n"
        "from trendbotd.cli import main\n"
        f"code = main(['run', '--config', {str(path)!r}])\n"
        f"print(code, [m for m in {heavy!r} if m in sys.modules])\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        holder.release()
    assert result.stdout == f"{int(ExitCode.ALREADY_RUNNING)} []\n", result.stderr
    assert result.stderr.startswith(f"trendbotd: already running: PID {os.getpid()} (")


def test_a_config_changed_between_the_reads_locks_what_was_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _config(tmp_path, name="validated")
    stale = InstanceKey("stale", tmp_path / "run")
    monkeypatch.setattr(cli, "read_instance", lambda _: stale)
    seen: list[Path] = []

    def fake_run(
        cfg: config.Config, options: object, *, lock: PidLock, location: object, signals: object
    ) -> int:
        seen.append(lock.path)
        assert lock.held
        assert not (tmp_path / "run" / "stale.pid").exists()
        return 0

    monkeypatch.setattr(app, "run", fake_run)
    assert cli.main(["run", "--config", str(path)]) == 0
    assert seen == [tmp_path / "run" / "validated.pid"]
    assert not (tmp_path / "run" / "validated.pid").exists()  # released on the way out


def test_bad_config_after_the_lock_is_78_and_leaves_no_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text() + "[risk]\nrisk_per_trad = 0.01\n")
    assert cli.main(["run", "--config", str(path)]) == ExitCode.CONFIG_ERROR
    assert f"{path}:5: risk.risk_per_trad: unknown key" in capsys.readouterr().err
    assert list((tmp_path / "run").iterdir()) == []


# ----- naming the holder from /proc -----


def test_describe_process_says_what_psutil_says() -> None:
    proc = psutil.Process(os.getpid())
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(proc.create_time()))
    expected = f"PID {os.getpid()} ({' '.join(proc.cmdline())}), started {started}"
    assert describe_process(os.getpid()) == expected
    kthreadd = psutil.Process(2) if psutil.pid_exists(2) else None
    if kthreadd is not None and not kthreadd.cmdline():  # a kernel thread: its name
        assert describe_process(2).startswith(f"PID 2 ({kthreadd.name()}), started ")


def test_stat_fields_survive_odd_process_names() -> None:
    stat = "4242 (a (b) c d) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 9 10"
    assert pidlock._comm(stat) == "a (b) c d"
    assert pidlock._start_ticks(stat) == 987654


def test_describe_process_of_a_gone_process() -> None:
    assert describe_process(999_999_999) == (
        "PID 999999999 (no longer exists; a process that inherited its lock still holds it)"
    )
