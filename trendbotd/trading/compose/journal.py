"""Wiring for the engine: open the instance journal, then build the order stack on it.

Startup order: ``open_instance_journal`` right after the lock (a corrupt journal must
stop the daemon before any exchange call, exit 65), then connect the exchange, then
``build_position_manager`` and ``PositionManager.sync`` with the startup snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

from trendbotd.alerts.sink import AlertSink
from trendbotd.config import Config
from trendbotd.core.clock import Clock
from trendbotd.core.ports import Exchange
from trendbotd.journal.statedir import StateDir, resolve_state_dir
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading import crashpoints
from trendbotd.trading.executor import ExecutorPolicy, OrderExecutor
from trendbotd.trading.positions import PositionManager

logger = logging.getLogger(__name__)

CLOSE_ROUNDS = 5


def journal_location(config: Config, *, create: bool = True) -> tuple[StateDir, Path]:
    state = resolve_state_dir(config, create=create)
    return state, state.journal_path(config.instance.name)


def open_instance_journal(config: Config) -> Journal:
    """``<state_dir>/<instance>.db``, read-write; logs which state directory it chose."""
    state, path = journal_location(config)
    logger.info("journal.open path=%s state_dir_source=%s", path, state.source)
    return open_journal(path)


def build_position_manager(
    config: Config,
    *,
    journal: Journal,
    exchange: Exchange,
    clock: Clock,
    waiting: Callable[[float], None] | None = None,
    env: Mapping[str, str] | None = None,
    recv_window_ms: int | None = None,
    fence: Callable[[], bool] | None = None,
    alerts: AlertSink | None = None,
) -> PositionManager:
    """The executor (crash points read once from ``TRENDBOTD_CRASH_AT`` here) and the
    position manager over it."""
    executor = OrderExecutor(
        exchange=exchange,
        journal=journal,
        clock=clock,
        instance=config.instance.name,
        policy=ExecutorPolicy.from_config(config, recv_window_ms=recv_window_ms),
        crash=crashpoints.from_env(env),
        waiting=waiting,
        fence=fence,
    )
    return PositionManager(
        executor=executor,
        symbols=config.trading.symbols,
        close_rounds=CLOSE_ROUNDS,
        emergency_stop_distance=Decimal(str(config.risk.emergency_stop_distance)),
        alerts=alerts,
    )
