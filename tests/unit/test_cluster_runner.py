"""The cluster runner never reports a leadership that ended while a tick ran.

The election runs over an in-memory etcd stand-in on a hand-moved clock; the trader is a
stand-in whose tick can "freeze" the process (move the clock past the send window) the way
SIGSTOP does. The runner under test is the real one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.config_files import config_file
from support.startup_steps import RecordedProgress

from trendbotd.adapters.etcd_gateway import CreateResult, KeyValue, Lease
from trendbotd.cluster import settings
from trendbotd.cluster.election import Election
from trendbotd.cluster.runner import ClusterRunner
from trendbotd.cluster.states import Role
from trendbotd.config import Config, load_config
from trendbotd.errors import LeadershipLostError


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Etcd:
    """Just enough of the etcd gateway for one node to take and keep the leader key."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.key: KeyValue | None = None

    def get(self, key: str) -> KeyValue | None:
        return self.key

    def grant(self, ttl_s: int) -> Lease:
        return Lease(id=next(self._ids), ttl_s=ttl_s)

    def create_if_absent(self, key: str, value: bytes, lease_id: int) -> CreateResult:
        if self.key is None:
            self.key = KeyValue(key, value, create_revision=7, mod_revision=7, lease=lease_id)
            return CreateResult(created=True, current=self.key, revision=7)
        return CreateResult(created=False, current=self.key, revision=7)

    def keepalive(self, lease_id: int) -> int:
        return 30

    def revoke(self, lease_id: int) -> None:
        self.key = None


class _Notes:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def ready(self, status: str) -> None:
        self.statuses.append(status)

    def status(self, text: str) -> None:
        self.statuses.append(text)

    def watchdog(self) -> None:
        return None


class _Trader:
    """A trader whose tick takes ``tick_s`` of the election's clock."""

    def __init__(self, clock: _Clock, may_send: Callable[[], bool]) -> None:
        self._clock = clock
        self.may_send = may_send
        self.tick_s = 0.0
        self.ticks = 0

    def start(self, progress: Any) -> str:
        return "ready"

    def tick(self) -> str:
        self.ticks += 1
        self._clock.now += self.tick_s
        return "normal | BTC/USDT:USDT flat"

    def seconds_until_next_tick(self) -> float:
        return 60.0

    def stop(self) -> None:
        return None


class _Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.clock = _Clock()
        self.notes = _Notes()
        self.trader: _Trader | None = None
        self.election = Election(
            _Etcd(),  # type: ignore[arg-type]
            key=settings.leader_key(config),
            node="host-a",
            timing=settings.timing(config),
            clock=self.clock,
        )
        self.runner = ClusterRunner(
            config,
            notifier=self.notes,
            open_election=lambda _config: self.election,
            trader=self._trader,
        )

    def _trader(self, _config: Config, may_send: Callable[[], bool]) -> Any:
        self.trader = _Trader(self.clock, may_send)
        return self.trader

    def lead_and_trade(self) -> _Trader:
        self.runner.start(RecordedProgress())
        # the election thread takes the key at once, then sleeps until its renewal is due:
        # an hour away on its (hand-moved) clock, so it does nothing more during a test
        deadline = time.monotonic() + 30
        while self.election.state.role is not Role.LEADER:
            assert time.monotonic() < deadline, "the election never took the free key"
            time.sleep(0.01)
        assert self.runner.tick().endswith("waiting out the margin before the first order")
        self.clock.now += settings.timing(self.config).margin_s
        assert self.runner.tick() == "leader (epoch 7): ready"
        assert self.trader is not None
        return self.trader


@pytest.fixture
def node(tmp_path: Path) -> Iterator[_Node]:
    table = (
        '[cluster]\nendpoints = ["http://127.0.0.1:2379"]\nnode_name = "host-a"\n'
        "ttl_s = 3600\nrenew_s = 3000\n"
    )
    config = load_config(config_file(tmp_path, '[instance]\nname = "alpha"\n\n' + table))
    node = _Node(config)
    yield node
    node.runner.stop()


def test_a_tick_inside_the_window_reports_the_leader(node: _Node) -> None:
    trader = node.lead_and_trade()
    assert node.runner.tick() == "leader (epoch 7): normal | BTC/USDT:USDT flat"
    assert trader.ticks == 1


def test_a_tick_that_outlives_the_window_does_not_report_leading(node: _Node) -> None:
    trader = node.lead_and_trade()
    trader.tick_s = 3600.0  # frozen mid-tick for as long as the TTL
    with pytest.raises(LeadershipLostError, match="restarting as standby"):
        node.runner.tick()
    assert trader.ticks == 1
    assert not trader.may_send()  # and the fence it trades behind is shut
