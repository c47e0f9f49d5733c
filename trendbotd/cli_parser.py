"""The command line's grammar: ``trendbotd <command> [options]``, with the lazy commands
(``sim-exchange``, ``backtest``) imported only when chosen. Light to import: ``run`` parses
its arguments before it takes the instance lock."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any, NoReturn

from trendbotd import __version__
from trendbotd.errors import TrendbotError
from trendbotd.service.instance_lock import DEFAULT_CONFIG_PATH

PROG = "trendbotd"

# command -> (module with add_arguments(parser) and run(args) -> int, help)
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "sim-exchange": ("trendbotd.sim.main", "run the simulated Binance USD-M exchange on 127.0.0.1"),
    "backtest": ("trendbotd.backtest.main", "run the strategy over historical candles"),
}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"TOML configuration (default: {DEFAULT_CONFIG_PATH} if it exists, else defaults)",
    )


def build_parser(command: str | None) -> tuple[argparse.ArgumentParser, Any]:
    """The parser, plus the imported module of a lazy command when ``command`` is one."""
    parser = _Parser(prog=PROG, description="Trend-following trading daemon.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_run(sub)
    _add_journal_commands(sub)
    _add_flatten(sub)
    _add_alert(sub)
    return parser, _add_lazy(sub, command)


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run the daemon")
    _add_config(run)
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--foreground", action="store_true", help="never fork (default; what systemd uses)"
    )
    mode.add_argument(
        "--daemon",
        action="store_true",
        help="double-fork; return once the daemon is ready (exit 0) or has failed",
    )
    run.add_argument("--paper", action="store_true", help="trade on the built-in simulator")


def _add_journal_commands(sub: Any) -> None:

    check = sub.add_parser("check-config", help="validate the configuration and print it")
    _add_config(check)
    status = sub.add_parser("status", help="is the daemon running, and what is it doing")
    _add_config(status)
    status.add_argument(
        "--json",
        action="store_true",
        help="one JSON document (versioned by its 'schema' key) instead of the text report",
    )
    resume = sub.add_parser(
        "resume", help="trade again after reduce-only / halted mode or the daily-loss stop"
    )
    _add_config(resume)
    resume.add_argument(
        "--reason", default="", metavar="TEXT", help="why, kept in the journal with the resume"
    )

    halt = sub.add_parser(
        "halt", help="no new entries; stops, trailing stops and exits still managed"
    )
    _add_config(halt)
    halt.add_argument(
        "--reason", default="", metavar="TEXT", help="why, kept in the journal with the halt"
    )


def _add_flatten(sub: Any) -> None:
    flatten = sub.add_parser(
        "flatten",
        help="cancel entries, close positions at market (stops kept until flat), then halt",
    )
    _add_config(flatten)
    which = flatten.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--symbol",
        action="append",
        metavar="SYMBOL",
        help="a configured symbol, e.g. BTC/USDT:USDT (repeat for more)",
    )
    which.add_argument("--all", action="store_true", help="every configured symbol")
    flatten.add_argument(
        "--reason", default="", metavar="TEXT", help="why, kept in the journal with the request"
    )


def _add_alert(sub: Any) -> None:

    alert = sub.add_parser(
        "alert",
        help="send a failed unit's report (what OnFailure= runs) or a test alert, "
        "plus the unsent outbox",
    )
    _add_config(alert)
    what = alert.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--unit", metavar="UNIT", help="report UNIT as failed (result, exit status, last lines)"
    )
    what.add_argument("--test", action="store_true", help="send a test alert to every channel")
    what.add_argument("--flush", action="store_true", help="only send what the outbox holds")
    alert.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up delivering after this long; the rest stays in the outbox (default 30)",
    )


def _add_lazy(sub: Any, command: str | None) -> Any:
    module: Any = None
    for name, (module_name, help_text) in LAZY_COMMANDS.items():
        lazy = sub.add_parser(name, help=help_text)
        if name == command:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                raise TrendbotError(
                    f"{name} is not available in this installation ({e.name} is missing)"
                ) from e
            module.add_arguments(lazy)
    return module
