"""Command line: ``trendbotd <command>`` and ``python -m trendbotd <command>``.

Every failure ends as one line on stderr and a documented exit code (trendbotd.exitcodes).
``run`` takes the instance lock before it imports anything else of trendbotd, even the
configuration schema: a duplicate launch is refused in little more than Python's own
start-up. ``sim-exchange`` and ``backtest`` live in other packages and are imported only
when chosen.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trendbotd.cli_parser import PROG, UsageError, build_parser
from trendbotd.errors import TrendbotError
from trendbotd.exitcodes import ExitCode
from trendbotd.service.instance_lock import (
    InstanceKey,
    matches,
    read_instance,
    take_lock,
)
from trendbotd.service.pidlock import (
    HolderInfo,
    LockLocation,
    existing_lock_location,
    query_holder,
)
from trendbotd.service.signals import SignalQueue

if TYPE_CHECKING:
    from trendbotd.config import Config


def _error_line(text: str) -> None:
    """One line on stderr; under journald at priority err, so `journalctl -p err` shows why
    the unit failed even when logging was never set up (bad config, lock refused)."""
    from trendbotd.service.journalstream import under_journald  # noqa: PLC0415 - error path

    prefix = "<3>" if under_journald(sys.stderr, os.environ) else ""
    print(prefix + text, file=sys.stderr)


def _chosen_command(argv: Sequence[str]) -> str | None:
    # The top-level parser takes no option with a value, so the first word is the command.
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except UsageError as e:
        _error_line(str(e))
        return ExitCode.USAGE
    except TrendbotError as e:
        _error_line(f"{PROG}: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 128 + 2  # the shell's convention for SIGINT
    except Exception as e:  # noqa: BLE001 - last resort: a bug, shown with its traceback
        import traceback  # noqa: PLC0415 - only for a bug

        traceback.print_exc()
        print(f"{PROG}: internal error: {e!r}", file=sys.stderr)
        return ExitCode.FAILURE


def _main(argv: list[str]) -> int:
    command = _chosen_command(argv)
    parser, module = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version
        return e.code if isinstance(e.code, int) else ExitCode.OK
    commands = {
        "run": _run,
        "check-config": _check_config,
        "status": _status,
        "resume": _resume,
        "halt": _halt,
        "flatten": _flatten,
        "alert": _alert,
    }
    handler = commands.get(args.command)
    return handler(args) if handler is not None else int(module.run(args))


def _run(args: argparse.Namespace) -> int:
    key = read_instance(args.config)
    config: Config | None = None
    if key is None:
        # The [instance] table needs the full validation: do that first, as always.
        config = _load_config(args.config, paper=args.paper)
        key = _instance_key(config)
    # Flag-only handlers before the lock is ours: from the first moment the lock is held,
    # a SIGTERM (systemd stop, a stampede's loser killed) is queued and stops the startup
    # at its next safe point with exit 0 -- never a death by signal with the lock half set up.
    signals = SignalQueue()
    signals.install()
    lock, location = take_lock(key)
    try:
        # Everything else loads only once the lock is ours: a duplicate launch is refused
        # in the time it takes to start Python and read one TOML table.
        if config is None:
            config = _load_config(args.config, paper=args.paper)  # invalid: 78, lock released
            if not matches(key, name=config.instance.name, runtime_dir=config.instance.runtime_dir):
                # The file changed between the two reads: the validated one names the lock.
                lock.release()
                lock, location = take_lock(_instance_key(config))
        from trendbotd.service import lifecycle as app  # noqa: PLC0415
        from trendbotd.service.loop import RunOptions  # noqa: PLC0415

        options = RunOptions(config_path=args.config, paper=args.paper, daemon=args.daemon)
        return app.run(config, options, lock=lock, location=location, signals=signals)
    finally:
        lock.release()  # no-op when the daemon context released it or a launcher forgot it


def _load_config(path: Path | None, *, paper: bool = False) -> Config:
    from trendbotd.config import load_config  # noqa: PLC0415 - not before run's lock

    return load_config(path, paper=paper)


def _instance_key(config: Config) -> InstanceKey:
    return InstanceKey(config.instance.name, config.instance.runtime_dir)


def _check_config(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    print(config.describe())
    print(f"{PROG}: configuration OK ({config.source or 'built-in defaults'})", file=sys.stderr)
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    location = _existing_lock_location(config)
    holder = query_holder(location.path)
    if args.json:
        _print_status_json(config, location, holder)
    else:
        print(f"instance: {config.instance.name}")
        print(f"lock: {location.path} ({location.source})")
        print(f"state: running, {holder.description}" if holder else "state: not running")
        if holder is not None and holder.pid is not None:
            from trendbotd.service.procinfo import resource_line  # noqa: PLC0415 - status only

            print(f"process: {resource_line(holder.pid)}")
        for line in status_lines(config):
            print(line)
    # LSB status convention, so scripts and monitoring can test `trendbotd status` directly
    return ExitCode.OK if holder else ExitCode.NOT_RUNNING


def _print_status_json(config: Config, location: LockLocation, holder: HolderInfo | None) -> None:
    import json  # noqa: PLC0415 - status only

    from trendbotd.journal.status import read_status  # noqa: PLC0415
    from trendbotd.service.procinfo import process_resources  # noqa: PLC0415
    from trendbotd.service.status_doc import status_document  # noqa: PLC0415
    from trendbotd.trading.compose.journal import journal_location  # noqa: PLC0415

    _, path = journal_location(config, create=False)
    document = status_document(
        instance=config.instance.name,
        lock_path=location.path,
        lock_source=location.source,
        holder=holder,
        resources=process_resources(holder.pid) if holder and holder.pid else None,
        journal_path=path,
        report=read_status(path) if path.exists() else None,
    )
    print(json.dumps(document, indent=2))


def _resume(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415 - resume only

    from trendbotd.journal.resume import resume_journal  # noqa: PLC0415
    from trendbotd.trading.compose.journal import journal_location  # noqa: PLC0415

    config = _load_config(args.config)
    running = query_holder(_existing_lock_location(config).path) is not None
    _, path = journal_location(config, create=False)
    plan = resume_journal(
        path,
        operator=_operator(),
        note=" ".join(args.reason.split()),  # one line in the journal and the log
        now_ms=time.time_ns() // 1_000_000,
        daemon_running=running,
        config_reduce_only=config.risk.reduce_only,
        config_source=str(config.source or "the built-in defaults"),
    )
    print(f"{PROG}: {config.instance.name}: {plan.summary}")
    for note in plan.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    return ExitCode.OK


def _halt(args: argparse.Namespace) -> int:
    from trendbotd.service.operator_commands import run_halt  # noqa: PLC0415 - halt only

    config = _load_config(args.config)
    return run_halt(config, operator=_operator(), note=" ".join(args.reason.split()))


def _flatten(args: argparse.Namespace) -> int:
    from trendbotd.journal.operator_requests import check_symbols  # noqa: PLC0415
    from trendbotd.service.operator_commands import run_flatten  # noqa: PLC0415 - flatten only

    config = _load_config(args.config)
    symbols: list[str] | None = None if args.all else list(dict.fromkeys(args.symbol))
    unknown = check_symbols(symbols or [], config.trading.symbols)
    if unknown:
        raise UsageError(
            f"{PROG} flatten: {', '.join(unknown)} not traded by this instance "
            f"(configured: {', '.join(config.trading.symbols)})"
        )
    return run_flatten(
        config, symbols=symbols, operator=_operator(), note=" ".join(args.reason.split())
    )


def _alert(args: argparse.Namespace) -> int:
    from trendbotd.alerts.unit_report import run_alert_command  # noqa: PLC0415

    if not 0 < args.timeout <= 600:
        raise UsageError(f"{PROG} alert: --timeout must be in (0, 600]")
    return run_alert_command(
        config_path=args.config,
        unit=args.unit,
        test=args.test,
        timeout_s=args.timeout,
        env=os.environ,
    )


def _operator() -> str:
    """Who resumed / halted / flattened, for the journal: the sudo caller rather than root
    when there is one."""
    import getpass  # noqa: PLC0415 - operator commands only

    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        return sudo_user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (containers)
        return f"uid {os.getuid()}"


def _existing_lock_location(config: Config) -> LockLocation:
    return existing_lock_location(config.instance.name, config.instance.runtime_dir)


def status_lines(config: Config) -> list[str]:
    """The operational part of ``status`` (mode, positions and their stops, unfinished
    orders, last tick), read from the journal opened read-only: safe while the daemon runs."""
    import time  # noqa: PLC0415 - status only

    from trendbotd.journal.status import format_status, read_status  # noqa: PLC0415
    from trendbotd.trading.compose.journal import journal_location  # noqa: PLC0415

    lines: list[str] = []
    if config.cluster.enabled:
        from trendbotd.cluster.status import cluster_line  # noqa: PLC0415 - status only

        lines.append(cluster_line(config))
    _, path = journal_location(config, create=False)
    if not path.exists():
        return [*lines, f"journal: {path} (none yet: the daemon has never run with this config)"]
    report = read_status(path)
    return lines + format_status(report, now_ms=time.time_ns() // 1_000_000).splitlines()
