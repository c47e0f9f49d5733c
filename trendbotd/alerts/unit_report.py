"""``trendbotd alert``: runs when the daemon itself cannot report (``OnFailure=`` starts
``trendbotd-alert@<unit>.service``), or to send a test alert.

It sends "unit failed: result, exit status, last log lines" through the configured
channels, plus whatever the outbox still holds, then exits. The failed run's invocation
id (``$MONITOR_INVOCATION_ID``, systemd >= 250, else ``systemctl show``) names the alert,
so the restarted daemon's own report of that run is the same alert, sent once.

Exit codes: 0 everything delivered (or nothing to send), 64 bad arguments, 69 a channel
did not take everything before ``--timeout`` (it stays in the outbox), 73 the outbox is
unusable or belongs to another user, 77 a channel secret is unusable, 78 the
[instance]/[alerts] config is invalid.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trendbotd.errors import StatePathError
from trendbotd.exitcodes import ExitCode
from trendbotd.service.logsetup import redact

if TYPE_CHECKING:
    from trendbotd.config import Config

logger = logging.getLogger(__name__)

LOG_LINES = 20
_LINE_MAX = 300
_TOOL_TIMEOUT_S = 10.0
_SHOW_KEYS = ("Result", "ExecMainCode", "ExecMainStatus", "InvocationID", "NRestarts")
_CLD = {"1": "exited", "2": "killed", "3": "dumped"}  # ExecMainCode (siginfo si_code)


@dataclass(frozen=True, slots=True)
class UnitFailure:
    unit: str
    result: str
    exit_code: str  # exited / killed / dumped
    exit_status: str  # a number, or a signal name
    invocation_id: str
    restarts: str
    log: str  # the last lines, redacted


def config_for_unit(unit: str) -> Path | None:
    """The config a unit of this package runs with: ``trendbotd@NAME.service`` ->
    ``/etc/trendbotd/NAME.toml`` (as its ExecStart= says); None: the default path."""
    m = re.fullmatch(r"trendbotd@([^/]+)\.service", unit)
    return Path(f"/etc/trendbotd/{m.group(1)}.toml") if m else None


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show -p A -p B`` output (``A=...`` lines) as a dict."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def describe_failure(
    unit: str, *, env: Mapping[str, str], show: Mapping[str, str], log_lines: Sequence[str]
) -> UnitFailure:
    """Pure: systemd's MONITOR_* variables win (they describe the run that failed, even if
    a restart has begun since); ``systemctl show`` fills the gaps."""
    code = env.get("MONITOR_EXIT_CODE") or _CLD.get(show.get("ExecMainCode", ""), "")
    lines = [redact(line)[:_LINE_MAX] for line in log_lines[-LOG_LINES:]]
    return UnitFailure(
        unit=env.get("MONITOR_UNIT") or unit,
        result=env.get("MONITOR_SERVICE_RESULT") or show.get("Result", "") or "unknown",
        exit_code=code or "unknown",
        exit_status=env.get("MONITOR_EXIT_STATUS") or show.get("ExecMainStatus", "") or "unknown",
        invocation_id=env.get("MONITOR_INVOCATION_ID") or show.get("InvocationID", ""),
        restarts=show.get("NRestarts", ""),
        log="\n".join(lines),
    )


def _tool(args: list[str]) -> str:
    """Output of a systemd tool; an empty string (and a log line) when it cannot answer."""
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.warning("alert.tool_failed tool=%s %s", args[0], e)
        return ""
    if done.returncode != 0:
        logger.warning(
            "alert.tool_failed tool=%s status=%d %s",
            args[0],
            done.returncode,
            redact(done.stderr.strip())[:200],
        )
        return ""
    return done.stdout


def gather(unit: str, env: Mapping[str, str]) -> UnitFailure:
    props = [a for key in _SHOW_KEYS for a in ("-p", key)]
    show = parse_show(_tool(["systemctl", "show", unit, *props]))
    log = _tool(["journalctl", "-u", unit, "-n", str(LOG_LINES), "-o", "cat", "--no-pager"])
    return describe_failure(unit, env=env, show=show, log_lines=log.splitlines())


def _refuse_foreign_state(config: Config, env: Mapping[str, str]) -> None:
    """Run by root (``sudo trendbotd alert --test``), the outbox and its lock files would
    be created as root and the daemon could no longer use them: refuse, naming the user."""
    from trendbotd.journal.statedir import resolve_state_dir  # noqa: PLC0415

    path = resolve_state_dir(config, env=env, create=False).path
    try:
        owner = path.stat().st_uid
    except FileNotFoundError:
        return
    if owner != os.geteuid():
        raise StatePathError(
            f"{path} belongs to uid {owner}, not to uid {os.geteuid()}: run this as the "
            "daemon's user (e.g. sudo -u trendbotd trendbotd alert ...)"
        )


def run_alert_command(
    *,
    config_path: Path | None,
    unit: str | None,
    test: bool,
    timeout_s: float,
    env: Mapping[str, str],
) -> int:
    from trendbotd.alerts.wiring import crash_alert_id, open_alerts  # noqa: PLC0415
    from trendbotd.config import load_alert_config  # noqa: PLC0415
    from trendbotd.service.logsetup import configure_logging  # noqa: PLC0415

    if config_path is None and unit is not None:
        config_path = config_for_unit(unit)
    config = load_alert_config(config_path)  # ConfigError: 78
    configure_logging(level="info", mode="foreground", ident="trendbotd-alert", env=env)
    if not config.alerts.channels:
        print("trendbotd: no alert channel configured ([alerts.channels.NAME])", file=sys.stderr)
        return ExitCode.CONFIG_ERROR if test else ExitCode.OK
    _refuse_foreign_state(config, env)
    alerts = open_alerts(config, env=env)  # CredentialsError: 77
    if alerts.outbox is None:
        return ExitCode.CANT_CREATE
    if test:
        alerts.sink.emit("alert.test", instance=config.instance.name)
    if unit is not None:
        failure = gather(unit, env)
        alerts.sink.emit(
            "unit.failed",
            alert_id=crash_alert_id(failure.invocation_id) if failure.invocation_id else None,
            unit=failure.unit,
            result=failure.result,
            exit=f"{failure.exit_code}/{failure.exit_status}",
            restarts=failure.restarts or None,
            log=failure.log or "(no log lines available)",
        )
    deadline = time.monotonic() + timeout_s
    left = [s.channel.name for s in alerts.senders if not s.drain(deadline=deadline)]
    outbox = alerts.outbox
    pending = {name: outbox.depth(name) for name in left}
    alerts.close_outbox()
    if left:
        shown = ", ".join(f"{n} ({c} pending)" for n, c in pending.items())
        print(f"trendbotd: not delivered in {timeout_s:g} s: {shown}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    print("trendbotd: alerts delivered", file=sys.stderr)
    return ExitCode.OK
