"""The main loop in-process: what it does with tick failures, signals, reloads, the watchdog."""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest

from trendbotd.config import Config
from trendbotd.errors import ExchangeAuthError, TransientExchangeError
from trendbotd.exitcodes import ExitCode
from trendbotd.service import loop as main_loop
from trendbotd.service.loop import MAX_TICK_FAILURES, Loop, RunOptions
from trendbotd.service.signals import SignalQueue


class RecordingNotifier:
    def __init__(self, watchdog_interval_s: float | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self._interval = watchdog_interval_s

    def ready(self, status: str) -> None:
        self.sent.append(("ready", status))

    def status(self, text: str) -> None:
        self.sent.append(("status", text))

    def watchdog(self) -> None:
        self.sent.append(("watchdog", f"{time.monotonic():.3f}"))

    def extend_timeout(self, seconds: float) -> None:
        self.sent.append(("extend", str(seconds)))

    def reloading(self) -> None:
        self.sent.append(("reloading", ""))

    def stopping(self, status: str) -> None:
        self.sent.append(("stopping", status))

    @property
    def watchdog_interval_s(self) -> float | None:
        return self._interval

    def kinds(self) -> list[str]:
        return [k for k, _ in self.sent]


class FakeRunner:
    """Ticks at once; each scripted outcome is a status string or an exception to raise."""

    def __init__(self, outcomes: list[object], signals: SignalQueue) -> None:
        self.outcomes = outcomes
        self.signals = signals
        self.ticks = 0
        self.reloaded: list[Config] = []
        self.operator_calls = 0
        self.operator_outcomes: list[object] = []

    def start(self, progress: object) -> str:
        return "ready"

    def seconds_until_next_tick(self) -> float:
        return 0.0

    def tick(self) -> str:
        self.ticks += 1
        if not self.outcomes:
            self.signals._handle(signal.SIGTERM, None)  # as if `systemctl stop` arrived
            return "last tick"
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return str(outcome)

    def operator_requests(self) -> str | None:
        self.operator_calls += 1
        if self.operator_outcomes:
            outcome = self.operator_outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return None if outcome is None else str(outcome)
        return None

    def reload(self, config: Config) -> None:
        self.reloaded.append(config)

    def stop(self) -> None:
        pass


def _loop(
    runner: FakeRunner, notifier: RecordingNotifier, signals: SignalQueue, path: Path | None = None
) -> Loop:
    return Loop(
        runner,
        notifier=notifier,
        signals=signals,
        config=Config(),
        options=RunOptions(config_path=path, paper=True, daemon=False),
    )


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main_loop, "TICK_RETRY_BASE_S", 0.001)


def test_ticks_update_status_until_sigterm_then_exit_0() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner(["one", "two"], signals)
    assert _loop(runner, notifier, signals).run() == ExitCode.OK
    assert ("status", "one") in notifier.sent and ("status", "two") in notifier.sent
    assert notifier.sent[-1] == ("stopping", "stopping on SIGTERM")


def test_operational_error_in_tick_stops_with_its_code() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner(["ok", ExchangeAuthError("API key rejected (-2015)")], signals)
    assert _loop(runner, notifier, signals).run() == ExitCode.NO_PERMISSION
    assert notifier.sent[-1] == ("stopping", "stopped: API key rejected (-2015)")


def test_repeated_tick_failures_exit_1() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner([RuntimeError(f"bug {i}") for i in range(10)], signals)
    assert _loop(runner, notifier, signals).run() == ExitCode.FAILURE
    assert runner.ticks == MAX_TICK_FAILURES
    assert notifier.kinds()[-1] == "stopping"


def test_a_good_tick_resets_the_failure_count() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    flaky: list[object] = []
    for _ in range(3):
        flaky += [TransientExchangeError("502")] * (MAX_TICK_FAILURES - 1) + ["recovered"]
    runner = FakeRunner(flaky, signals)
    assert _loop(runner, notifier, signals).run() == ExitCode.OK
    statuses = [text for kind, text in notifier.sent if kind == "status"]
    assert any(text.startswith("tick failed (4/5)") for text in statuses)
    assert statuses.count("recovered") == 3


def test_sighup_reloads_and_announces_ready(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[service]\ntick_interval_s = 2.5\n")
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner(["before"], signals)
    signals._handle(signal.SIGHUP, None)
    loop = _loop(runner, notifier, signals, path)
    assert loop.run() == ExitCode.OK
    assert runner.reloaded and runner.reloaded[0].service.tick_interval_s == 2.5
    assert loop.config.service.tick_interval_s == 2.5
    assert loop.config.exchange.paper  # --paper survives a reload
    kinds = notifier.kinds()
    assert kinds.index("reloading") < kinds.index("ready")
    assert ("ready", "configuration reloaded (2 settings changed)") in notifier.sent


def test_invalid_reload_keeps_the_running_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[service]\ntick_interval_s = 'fast'\n")
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner(["tick"], signals)
    signals._handle(signal.SIGHUP, None)
    loop = _loop(runner, notifier, signals, path)
    assert loop.run() == ExitCode.OK
    assert runner.reloaded == []
    assert loop.config == Config()
    ready = [text for kind, text in notifier.sent if kind == "ready"]
    assert ready and ready[0].startswith("reload failed, running with the previous configuration")


class IdleRunner(FakeRunner):
    """Never due: the loop only sleeps, and must keep feeding the watchdog while it does."""

    def __init__(self, signals: SignalQueue, *, stop_after: float) -> None:
        super().__init__([], signals)
        self._stop_at = time.monotonic() + stop_after

    def seconds_until_next_tick(self) -> float:
        if time.monotonic() >= self._stop_at:
            self.signals._handle(signal.SIGTERM, None)
        return 60.0


def test_watchdog_fed_while_sleeping_at_least_every_half_interval() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier(watchdog_interval_s=0.2)
    signals.open_wakeup()
    try:
        runner = IdleRunner(signals, stop_after=1.2)
        assert _loop(runner, notifier, signals).run() == ExitCode.OK
    finally:
        signals.close()
    pings = [float(t) for kind, t in notifier.sent if kind == "watchdog"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert len(pings) >= 5
    # designed for <= 3/8 of WATCHDOG_USEC (0.15 s); generous for a loaded machine, and
    # still below WATCHDOG_USEC (0.4 s), where systemd would kill us
    assert max(gaps) < 0.35, gaps
    assert runner.ticks == 0


def test_no_watchdog_when_not_armed() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier(watchdog_interval_s=None)
    runner = FakeRunner(["a", "b"], signals)
    _loop(runner, notifier, signals).run()
    assert "watchdog" not in notifier.kinds()


def test_sigterm_wakes_a_sleeping_loop_at_once() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    signals.open_wakeup()
    try:
        old = signal.signal(signal.SIGALRM, lambda *_: signals._handle(signal.SIGTERM, None))
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        try:
            code = _loop(IdleRunner(signals, stop_after=3600), notifier, signals).run()
        finally:
            signal.signal(signal.SIGALRM, old)
        assert code == ExitCode.OK
        # woken by the self-pipe; a missed wake-up would sleep out the 1 s slice (>= 1.2 s)
        assert time.monotonic() - started < 1.0
    finally:
        signals.close()


class OperatorRunner(IdleRunner):
    """Never due; stops once ``trendbotd halt`` / ``flatten``'s signal was acted on."""

    def operator_requests(self) -> str | None:
        done = super().operator_requests()
        self.signals._handle(signal.SIGTERM, None)
        return done


def test_the_operator_signal_is_acted_on_at_once_not_at_the_next_tick() -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    signals.open_wakeup()
    try:
        runner = OperatorRunner(signals, stop_after=60)
        runner.operator_outcomes = ["flat: 1 position(s) closed"]
        started = time.monotonic()
        signals._handle(signal.SIGUSR2, None)
        assert _loop(runner, notifier, signals).run() == ExitCode.OK
        assert time.monotonic() - started < 1.0  # the next tick is 60 s away
    finally:
        signals.close()
    assert runner.operator_calls == 1
    assert runner.ticks == 0
    assert ("status", "flat: 1 position(s) closed") in notifier.sent


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (TransientExchangeError("502"), ExitCode.OK),  # pending: the next tick retries
        (RuntimeError("bug"), ExitCode.OK),
        (ExchangeAuthError("API key rejected (-2015)"), ExitCode.NO_PERMISSION),
    ],
)
def test_a_failed_operator_request_stops_only_on_an_operational_error(
    outcome: BaseException, code: int
) -> None:
    signals, notifier = SignalQueue(), RecordingNotifier()
    runner = FakeRunner(["tick"], signals)
    runner.operator_outcomes = [outcome]
    signals._handle(signal.SIGUSR2, None)
    assert _loop(runner, notifier, signals).run() == code
    assert runner.ticks == (0 if code else 2)
