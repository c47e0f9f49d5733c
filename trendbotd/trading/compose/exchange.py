"""The exchange side of the composition: the clock, the ccxt exchange (live, or over the
simulator in paper mode) and the weight governor of a live instance."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trendbotd.adapters.budget_file import SharedBudgetFile
from trendbotd.adapters.ccxt_exchange import CcxtExchange
from trendbotd.adapters.clock import ScaledClock, SystemClock
from trendbotd.adapters.credentials import load_credentials, register_secret
from trendbotd.adapters.governor import GovernorSettings
from trendbotd.adapters.weight_budget import BudgetLimits
from trendbotd.config import Config
from trendbotd.core.clock import Clock
from trendbotd.service.pidlock import resolve_lock_path
from trendbotd.trading.compose.journal import journal_location

if TYPE_CHECKING:
    from trendbotd.sim import SimExchange

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timing:
    """The clock the instance trades by and how fast it runs against the wall clock."""

    clock: Clock
    speed: float = 1.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str | None
    api_key: str
    api_secret: str


def connect_exchange(config: Config, *, timing: Timing, endpoint: Endpoint) -> CcxtExchange:
    """The authenticated ccxt exchange (no request sent yet)."""
    speed = timing.speed
    return CcxtExchange(
        exchange_id=config.exchange.id,
        api_key=endpoint.api_key,
        api_secret=endpoint.api_secret,
        base_url=endpoint.base_url,
        demo=config.exchange.demo,
        recv_window_ms=recv_window_ms(config, speed),
        timeout_s=config.exchange.request_timeout_s,
        clock=timing.clock,
        rate_limit=not config.exchange.paper,  # the simulator is local: no throttle
        max_clock_offset_ms=clock_bound_ms(config, speed),
        # in exchange time: at --speed N the same real-time cadence as live
        clock_resync_s=config.exchange.clock_resync_s * max(1.0, speed),
        governor=None if config.exchange.paper else governor_settings(config),
    )


def live_endpoint(config: Config) -> Endpoint:
    creds = load_credentials(
        credentials_file=config.exchange.credentials_file,
        credential_name=config.exchange.credential_name,
    )
    return Endpoint(
        base_url=config.exchange.base_url or None,
        api_key=creds.api_key.reveal(),
        api_secret=creds.api_secret.reveal(),
    )


def paper_timing(config: Config, *, paper_clock: Clock | None) -> Timing:
    """``paper_clock``: a clock the caller drives (tests step a ManualClock); otherwise the
    wall clock scaled by ``paper.speed``, resumed from where the last replay stopped."""
    from trendbotd.sim import SimExchange  # noqa: PLC0415 - paper mode only

    if paper_clock is not None:
        return Timing(paper_clock)
    saved = SimExchange.saved_clock_ms(paper_state_file(config))
    now = SystemClock().now_ms()
    start = max(now, saved or 0)
    speed = config.paper.speed
    if speed != 1.0 or start != now:
        return Timing(ScaledClock(start_ms=start, speed=speed), speed)
    return Timing(SystemClock(), speed)


def start_paper_exchange(config: Config, timing: Timing) -> SimExchange:
    # The simulator is imported only in paper mode: live start-up does not pay for it.
    from trendbotd.sim import SimConfig, SimExchange  # noqa: PLC0415

    state_file = paper_state_file(config)
    sim = SimExchange(
        SimConfig(
            symbols=config.trading.symbols,
            start_balance=config.paper.start_balance,
            seed=config.paper.seed,
            regime=config.paper.regime,
            data_csv=config.paper.data_csv,
            timeframe=config.trading.timeframe,
            clock=timing.clock,
            response_delay_ms=config.paper.response_delay_ms,
            port=config.paper.port,
            state_file=state_file,
        )
    )
    sim.start()
    register_secret(sim.api_secret)
    logger.info(
        "paper.exchange base_url=%s speed=%s regime=%s state_file=%s",
        sim.base_url,
        timing.speed,
        config.paper.regime,
        state_file,
    )
    return sim


def recv_window_ms(config: Config, speed: float) -> int:
    # Scaled like the clock bound in a fast replay; Binance caps it at 60 s. In a cluster
    # the lease's margin is computed from cluster.recv_window_ms: sign with no more.
    window = config.exchange.recv_window_ms
    if config.cluster.enabled:
        window = min(window, config.cluster.recv_window_ms)
    return min(60_000, int(window * max(1.0, speed)))


def clock_bound_ms(config: Config, speed: float) -> int:
    # A paper replay at --speed N stretches every real millisecond of round trip into N:
    # the bound scales with it (the simulator shares our clock, so the true offset is 0).
    # The simulator's response_delay_ms is a slow network by setting: the half of it that
    # each measurement cannot see through is allowed on top, or it could never start.
    bound = config.exchange.max_clock_offset_ms
    if config.exchange.paper:
        bound += (config.paper.response_delay_ms + 1) // 2
    return int(bound * max(1.0, speed))


def governor_settings(config: Config) -> GovernorSettings:
    """The weight budget of a live instance, in a file shared by every instance on the
    host that talks to the same exchange host (Binance counts request weight per IP)."""
    rl = config.ratelimit
    path = rl.shared_file
    if path is None:
        lock = resolve_lock_path(
            config.instance.name, config.instance.runtime_dir, env=os.environ,
            euid=os.geteuid(), cwd=Path.cwd(), create=False,
        )  # fmt: skip
        ex = config.exchange
        host = urlsplit(ex.base_url).netloc if ex.base_url else ("demo" if ex.demo else "live")
        path = lock.path.parent / f"ratelimit-{ex.id}-{re.sub(r'[^A-Za-z0-9.-]', '_', host)}.json"
    logger.info(
        "ratelimit.budget file=%s weight_limit=%s share=%s urgent_share=%s",
        path, rl.weight_limit, rl.share, rl.urgent_share,
    )  # fmt: skip
    limits = BudgetLimits(
        weight_per_window=rl.weight_limit,
        orders_per_10s=rl.orders_per_10s,
        orders_per_window=rl.orders_per_minute,
        window_ms=int(rl.window_s * 1000),
        share=rl.share,
        urgent_share=rl.urgent_share,
    )
    return GovernorSettings(limits=limits, store=SharedBudgetFile(path), max_wait_s=rl.max_wait_s)


def paper_state_file(config: Config) -> Path:
    _, journal_path = journal_location(config)
    return journal_path.with_suffix(".paper.json")
