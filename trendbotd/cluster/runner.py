"""The daemon in a cluster: a standby until the election makes it leader, then the trader.

Standby: READY with ``STATUS=standby: leader NODE (epoch N)``; no exchange session, no
journal open, nothing sent. Leader: once its first send window opens (the margin after
acquiring), the ordinary trading runner starts (its startup sync rebuilds from the exchange)
and every order passes the election's fence. Demoted while trading: the fence has already
shut every order out; the tick raises so the process exits (69) and systemd restarts it as
a standby with nothing of the old leadership in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from trendbotd.cluster.election import Election
from trendbotd.cluster.states import Role, status_prefix
from trendbotd.config import Config
from trendbotd.core.ports import Notifier, StartupProgress
from trendbotd.errors import LeadershipLostError, NotLeaderError
from trendbotd.trading.runner import TradingRunner

logger = logging.getLogger(__name__)

STANDBY_POLL_S = 0.5  # a standby's loop looks at the election this often


class _Progress:
    """The trading runner's startup steps, reported under the leader's prefix."""

    def __init__(self, notifier: Notifier, prefix: str) -> None:
        self._notifier = notifier
        self._prefix = prefix

    def step(self, text: str) -> None:
        logger.info("cluster.takeover_step %s", text)
        self._notifier.status(f"{self._prefix}: {text}")

    def waiting(self, seconds: float) -> None:
        return None


class ClusterRunner:
    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier,
        open_election: Callable[[Config], Election],
        trader: Callable[[Config, Callable[[], bool]], TradingRunner],
    ) -> None:
        """``open_election``: this node's election (built at start, after its STATUS step).
        ``trader``: the trading runner behind the given fence, built at the takeover."""
        self._config = config
        self._notifier = notifier
        self._open_election = open_election
        self._new_trader = trader
        self._election: Election | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trader: TradingRunner | None = None
        self._next_look = 0.0  # monotonic: the next look at the election while not trading

    def start(self, progress: StartupProgress) -> str:
        config = self._config
        progress.step("joining the cluster")
        self._election = election = self._open_election(config)
        self._thread = threading.Thread(
            target=election.run, args=(self._stop,), name="election", daemon=True
        )
        self._thread.start()
        return self._status_only(election)

    def seconds_until_next_tick(self) -> float:
        election = self._require_election()
        if self._trader is None:
            return max(0.0, self._next_look - time.monotonic())
        wait = self._trader.seconds_until_next_tick()
        deadline = election.state.deadline()
        if deadline is None:
            return 0.0  # demoted: the next tick says so and exits
        # wake at the deadline: a demotion is acted on at once, not at the next candle
        return min(wait, max(0.0, deadline - election.clock()))

    def tick(self) -> str:
        election = self._require_election()
        self._next_look = time.monotonic() + STANDBY_POLL_S
        if self._thread is not None and not self._thread.is_alive():
            # the watchdog pings from this loop: it must not vouch for a dead election
            raise LeadershipLostError("cluster: the election loop has stopped; restarting")
        if self._trader is not None:
            # also a leader whose window closed before its election thread noticed (it was
            # frozen, say): it is no longer the leader, whatever its state still says
            self._still_leading(election)
        state = election.state
        if state.role is not Role.LEADER:
            return self._status_only(election)
        prefix = status_prefix(state)
        if self._trader is None:
            if not election.may_send():
                return f"{prefix}: waiting out the margin before the first order"
            logger.warning("cluster.takeover epoch=%d: syncing with the exchange", state.epoch)
            self._trader = self._new_trader(self._config, election.may_send)
            try:
                started = self._trader.start(_Progress(self._notifier, prefix))
            except NotLeaderError as e:
                raise LeadershipLostError(f"cluster: demoted during the takeover: {e}") from e
            self._still_leading(election)
            return f"{prefix}: {started}"
        try:
            status = self._trader.tick()
        except NotLeaderError as e:
            raise LeadershipLostError(f"cluster: demoted while trading: {e}") from e
        self._still_leading(election)
        return f"{prefix}: {status}"

    def operator_requests(self) -> str | None:
        """Only the trading leader acts on ``halt`` / ``flatten``; a standby leaves them in
        the journal for whoever leads (its own journal, its next takeover)."""
        if self._trader is None:
            return None
        try:
            return self._trader.operator_requests()
        except NotLeaderError as e:
            raise LeadershipLostError(f"cluster: demoted during a flatten: {e}") from e

    def reload(self, config: Config) -> None:
        if config.cluster != self._config.cluster:
            logger.warning("config.reload_ignored [cluster] changes need a restart")
            config = _with_cluster(config, self._config)
        if self._trader is not None:
            self._trader.reload(config)
        self._config = config

    def stop(self) -> None:
        try:
            if self._trader is not None:
                self._trader.stop()  # the shutdown policy, while still leader
        finally:
            self._stop.set()  # the election resigns: a standby takes over without the TTL
            if self._thread is not None:
                self._thread.join(timeout=self._config.cluster.rpc_timeout_s * 2 + 1)

    def _still_leading(self, election: Election) -> None:
        """A tick that began as leader may end after the window closed (the process was
        frozen mid-tick): its status must not announce a leadership that is gone."""
        state = election.state
        if state.role is not Role.LEADER or not election.may_send():
            raise LeadershipLostError(f"cluster: {status_prefix(state)}; restarting as standby")

    def _status_only(self, election: Election) -> str:
        return status_prefix(election.state)

    def _require_election(self) -> Election:
        if self._election is None:
            raise RuntimeError("ClusterRunner used before start()")
        return self._election


def _with_cluster(config: Config, old: Config) -> Config:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(config, cluster=old.cluster)
