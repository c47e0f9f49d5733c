"""Builds the alert side path from the configuration: channels (with their secrets), the
outbox next to the journal, one sender per channel, the sink; and the run bookkeeping that
tells a restarted daemon its last run ended uncleanly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trendbotd.adapters.credentials import load_secret_table
from trendbotd.alerts.channels import Channel, TelegramChannel, WebhookChannel
from trendbotd.alerts.events import Severity
from trendbotd.alerts.outbox import Outbox, outbox_path
from trendbotd.alerts.policy import RateLimit
from trendbotd.alerts.sender import ChannelSender, SenderSettings
from trendbotd.alerts.sink import AlertSink, NullAlertSink, OutboxAlertSink
from trendbotd.config import AlertChannelConfig, Config
from trendbotd.journal.statedir import resolve_state_dir

logger = logging.getLogger(__name__)


def crash_alert_id(invocation_id: str) -> str:
    """One failed run, one alert id: the restarted daemon and ``trendbotd alert --unit``
    both derive it from systemd's INVOCATION_ID of that run, so the outbox keeps one."""
    return f"failed-run-{invocation_id}"


def build_channel(
    ch: AlertChannelConfig, *, timeout_s: float, env: Mapping[str, str] | None = None
) -> Channel:
    setting = f"alerts.channels.{ch.name}"
    if ch.kind == "telegram":
        secret = load_secret_table(
            secret_file=ch.secret_file,
            secret_name=ch.secret_name,
            keys=("bot_token",),
            setting=setting,
            environ=env,
        )
        return TelegramChannel(
            ch.name,
            base_url=ch.base_url,
            token=secret["bot_token"],
            chat_id=ch.chat_id,
            timeout_s=timeout_s,
        )
    secret = load_secret_table(
        secret_file=ch.secret_file,
        secret_name=ch.secret_name,
        keys=("url",),
        setting=setting,
        environ=env,
    )
    url = secret["url"].reveal()
    if not url.startswith(("http://", "https://")):
        from trendbotd.errors import CredentialsError  # noqa: PLC0415 - error path

        raise CredentialsError(f"{setting}: the secret url must be an http:// or https:// URL")
    return WebhookChannel(ch.name, url=secret["url"], timeout_s=timeout_s)


@dataclass
class Alerts:
    """The alert side path of one process. ``sink`` is what callers use."""

    sink: AlertSink
    outbox: Outbox | None
    senders: list[ChannelSender] = field(default_factory=list)
    flush_s: float = 3.0
    run: int | None = None
    invocation_id: str = ""

    def start_senders(self) -> None:
        for sender in self.senders:
            sender.start()

    def wake(self) -> None:
        for sender in self.senders:
            sender.wake()

    def begin_run(self, *, env: Mapping[str, str], pid: int) -> None:
        """Record this run; report once when the previous one never recorded its end."""
        now = time.time_ns() // 1_000_000
        self.invocation_id = env.get("INVOCATION_ID", "") or f"pid{pid}-{now}"
        if self.outbox is None:
            return
        try:
            self.run, previous = self.outbox.begin_run(
                invocation_id=self.invocation_id, pid=pid, now_ms=now
            )
        except Exception:
            logger.exception("alert.run_record_failed")
            return
        if previous is not None and not previous.clean:
            started = datetime.fromtimestamp(previous.started_ms / 1000, tz=UTC)
            self.sink.emit(
                "daemon.restarted_unclean",
                alert_id=crash_alert_id(previous.invocation_id),
                previous_pid=previous.pid,
                previous_start=started.isoformat(timespec="seconds"),
                previous_invocation=previous.invocation_id,
            )

    def end_run(self, code: int) -> None:
        """The stop alert, the clean-stop record, then a short flush (``flush_s``)."""
        if code == 0:
            self.sink.emit("daemon.stopped", exit_code=code)
        else:
            # Same id as the alert unit's report of this run: one failure, one alert.
            self.sink.emit(
                "daemon.failed", alert_id=crash_alert_id(self.invocation_id), exit_code=code
            )
        if self.outbox is not None and self.run is not None:
            try:
                self.outbox.end_run(self.run, exit_code=code, now_ms=time.time_ns() // 1_000_000)
            except Exception:
                logger.exception("alert.run_record_failed")
        self.close()

    def close_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.close()

    def close(self) -> None:
        deadline = time.monotonic() + self.flush_s
        for sender in self.senders:
            sender.stop(timeout_s=max(0.0, deadline - time.monotonic()))
        for sender in self.senders:
            if not sender.drain(deadline=deadline):
                logger.warning(
                    "alert.unsent channel=%s pending=%d (sent later, or by the alert unit)",
                    sender.channel.name,
                    self.outbox.depth(sender.channel.name) if self.outbox else 0,
                )
        if self.outbox is not None:
            self.outbox.close()


def open_alerts(config: Config, *, env: Mapping[str, str] | None = None) -> Alerts:
    """Channels first (an unusable secret is the operator's to fix: CredentialsError),
    then the outbox (trouble there only logs: alerts never stop trading)."""
    environ = os.environ if env is None else env
    ac = config.alerts
    channels = [
        (
            build_channel(ch, timeout_s=ac.send_timeout_s, env=environ),
            Severity.parse(ch.min_severity),
        )
        for ch in ac.channels
    ]
    try:
        state = resolve_state_dir(config, env=environ)
        outbox = Outbox(outbox_path(state.path, config.instance.name), max_alerts=ac.outbox_max)
    except Exception:
        logger.exception("alert.outbox_unavailable (alerts go to the log only)")
        return Alerts(sink=NullAlertSink(), outbox=None, flush_s=ac.stop_flush_s)
    if not channels:
        return Alerts(sink=NullAlertSink(), outbox=outbox, flush_s=ac.stop_flush_s)
    settings = SenderSettings(
        instance=config.instance.name,
        coalesce_window_ms=int(ac.coalesce_window_s * 1000),
        rate_limit=RateLimit(ac.rate_limit, int(ac.rate_window_s * 1000)),
        retry_base_s=ac.retry_base_s,
        retry_max_s=ac.retry_max_s,
    )
    senders = [ChannelSender(outbox=outbox, channel=ch, settings=settings) for ch, _ in channels]
    alerts = Alerts(sink=NullAlertSink(), outbox=outbox, senders=senders, flush_s=ac.stop_flush_s)
    alerts.sink = OutboxAlertSink(
        outbox=outbox,
        channels=[(ch.name, minimum) for ch, minimum in channels],
        wake=alerts.wake,
    )
    logger.info(
        "alerts.channels %s outbox=%s",
        " ".join(f"{ch.name}:{m.label}" for ch, m in channels),
        outbox.path,
    )
    return alerts
