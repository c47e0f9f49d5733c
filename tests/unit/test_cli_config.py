"""The command line in-process: exit codes, one-line errors, lazy subcommands, status."""

from __future__ import annotations

import argparse
import os
import types
from pathlib import Path

import pytest

from trendbotd import cli, cli_parser
from trendbotd.exitcodes import ExitCode
from trendbotd.service.pidlock import PidLock


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[instance]\nname = "unit"\nruntime_dir = "{tmp_path / "run"}"\n{extra}')
    return path


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_check_config_prints_the_effective_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "[risk]\nrisk_per_trade = 0.02\n")
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"config.source={path}" in out
    assert "config.risk.risk_per_trade=0.02" in out
    assert "configuration OK" in err


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[risk\n", "TOML syntax error"),
        ("[risk]\nrisk_per_trad = 0.01\n", "risk.risk_per_trad: unknown key"),
        ("[risk]\nrisk_per_trade = '1%'\n", "risk.risk_per_trade: expected a number"),
        (
            "[risk]\nemergency_stop_distance = 0.9\n",
            "risk.emergency_stop_distance: must be in [0.001, 0.5]",
        ),
        ("[exchange]\npaper = false\n", "needs credentials_file or credential_name"),
        ("[bogus]\n", "unknown section [bogus]"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "run", "status"])
def test_bad_config_is_one_line_and_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str, command: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    assert cli.main([command, "--config", str(path)]) == ExitCode.CONFIG_ERROR
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"trendbotd: {path}")
    assert expected in line


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert cli.main(["run", "--config", str(missing)]) == ExitCode.CONFIG_ERROR
    assert "config file not found" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["run", "--daemon", "--foreground"],
        ["run", "--no-such-flag"],
        ["check-config", "--config"],
    ],
)
def test_usage_errors_are_64_and_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == ExitCode.USAGE
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("trendbotd") and "--help" in line


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "check-config", "status", "sim-exchange", "backtest"):
        assert command in out
    assert cli.main(["--version"]) == 0
    assert "trendbotd" in capsys.readouterr().out


def test_run_when_locked_is_75_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path)
    (tmp_path / "run").mkdir()
    holder = PidLock(tmp_path / "run" / "unit.pid")
    holder.acquire()
    try:
        assert cli.main(["run", "--config", str(path)]) == ExitCode.ALREADY_RUNNING
    finally:
        holder.release()
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"trendbotd: already running: PID {os.getpid()} (")


def test_status_not_running_and_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _config(tmp_path)
    assert cli.main(["status", "--config", str(path)]) == ExitCode.NOT_RUNNING == 3
    out = capsys.readouterr().out
    assert "state: not running" in out
    assert not (tmp_path / "run").exists()  # status creates nothing
    (tmp_path / "run").mkdir()
    holder = PidLock(tmp_path / "run" / "unit.pid")
    holder.acquire()
    monkeypatch.setattr(
        cli, "status_lines", lambda config: [f"mode: normal ({config.instance.name})"]
    )
    try:
        assert cli.main(["status", "--config", str(path)]) == 0
    finally:
        holder.release()
    out = capsys.readouterr().out
    assert f"state: running, PID {os.getpid()} (" in out
    assert "mode: normal (unit)" in out
    # the holder's resource use, from psutil (this test process holds the lock)
    process = next(line for line in out.splitlines() if line.startswith("process: RSS "))
    assert " MiB, CPU " in process and " threads, up 0h" in process


def test_run_does_not_import_lazy_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> types.ModuleType:
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(cli_parser.importlib, "import_module", refuse)
    parser, module = cli_parser.build_parser("run")
    assert module is None
    assert parser.parse_args(["run", "--paper"]).paper


def test_lazy_command_gets_its_own_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("fake_tool")
    seen: list[argparse.Namespace] = []

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--port", type=int, required=True)

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 3

    fake.add_arguments = add_arguments  # type: ignore[attr-defined]
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(cli_parser.LAZY_COMMANDS, "fake-tool", ("fake_tool", "a test tool"))
    monkeypatch.setattr(cli_parser.importlib, "import_module", lambda name: fake)
    assert cli.main(["fake-tool", "--port", "8080"]) == 3
    assert seen[0].port == 8080
    assert cli.main(["fake-tool"]) == ExitCode.USAGE
    assert "--port" in _one_line(capsys.readouterr().err)


def test_missing_lazy_module_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(
        cli_parser.LAZY_COMMANDS, "ghost", ("trendbotd.no_such_module_here", "not installed")
    )
    assert cli.main(["ghost"]) == ExitCode.FAILURE
    assert "ghost is not available" in _one_line(capsys.readouterr().err)


def test_sim_exchange_help_comes_from_its_module(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("trendbotd.sim.main")
    assert cli.main(["sim-exchange", "--help"]) == 0
    assert "--port" in capsys.readouterr().out
