"""Semantic checks of a parsed configuration: each returns (table, key, message) problems,
in file order; the loader reports the first and how many more."""

from __future__ import annotations

import re

from trendbotd.config.model import (
    _INSTANCE_NAME,
    _TIMEFRAMES,
    AlertsConfig,
    ClusterConfig,
    Config,
    ExchangeConfig,
    MetricsConfig,
    RateLimitConfig,
    StrategyParams,
)
from trendbotd.core.listen_address import parse_listen

Problem = tuple[str, str, str]  # (table, key, message)


def _strategy_problems(table: str, params: StrategyParams) -> list[Problem]:
    problems: list[Problem] = []

    def check(ok: bool, table: str, key: str, message: str) -> None:
        if not ok:
            problems.append((table, key, message))

    check(2 <= params.fast < params.slow, table, "fast", "must be >= 2 and below slow")
    check(params.slow <= 1000, table, "slow", "must be at most 1000")
    check(2 <= params.breakout <= 1000, table, "breakout", "must be 2..1000")
    check(2 <= params.exit_breakout <= 1000, table, "exit_breakout", "must be 2..1000")
    check(2 <= params.atr_period <= 500, table, "atr_period", "must be 2..500")
    check(0 < params.atr_stop_mult <= 50, table, "atr_stop_mult", "must be in (0, 50]")
    check(0 < params.trail_mult <= 50, table, "trail_mult", "must be in (0, 50]")
    check(
        2 <= params.efficiency_period <= 1000,
        table,
        "efficiency_period",
        "must be 2..1000",
    )
    check(0 <= params.min_efficiency < 1, table, "min_efficiency", "must be in [0, 1)")
    return problems


def _ratelimit_problems(rl: RateLimitConfig) -> list[Problem]:
    checks = [
        # the startup's account-mode step alone weighs 60 and must fit in one window
        (rl.weight_limit >= 200, "weight_limit", "must be at least 200"),
        (rl.orders_per_10s >= 1, "orders_per_10s", "must be at least 1"),
        (rl.orders_per_minute >= 1, "orders_per_minute", "must be at least 1"),
        (1 <= rl.window_s <= 3600, "window_s", "must be 1..3600"),
        (0.1 <= rl.share <= 1, "share", "must be in [0.1, 1]"),
        (rl.share <= rl.urgent_share <= 1, "urgent_share", "must be in [share, 1]"),
        (0 <= rl.max_wait_s <= 30, "max_wait_s", "must be 0..30 (the watchdog waits 30 s)"),
    ]
    return [("ratelimit", key, message) for ok, key, message in checks if not ok]


_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def alerts_problems(alerts: AlertsConfig) -> list[Problem]:
    checks = [
        (10 <= alerts.outbox_max <= 1_000_000, "outbox_max", "must be 10..1000000"),
        (0 < alerts.send_timeout_s <= 60, "send_timeout_s", "must be in (0, 60]"),
        (0 < alerts.retry_base_s <= alerts.retry_max_s, "retry_base_s", "must be in (0, max]"),
        (alerts.retry_max_s <= 3600, "retry_max_s", "must be at most 3600"),
        (1 <= alerts.rate_limit <= 1000, "rate_limit", "must be 1..1000"),
        (1 <= alerts.rate_window_s <= 3600, "rate_window_s", "must be 1..3600"),
        (0 <= alerts.coalesce_window_s <= 3600, "coalesce_window_s", "must be 0..3600"),
        (0 <= alerts.stop_flush_s <= 30, "stop_flush_s", "must be 0..30 (TimeoutStopSec)"),
        (0 <= alerts.unreachable_alert_s <= 86_400, "unreachable_alert_s", "must be 0..86400"),
    ]
    problems = [("alerts", key, message) for ok, key, message in checks if not ok]
    for ch in alerts.channels:
        table = f"alerts.channels.{ch.name}"
        if not _CHANNEL_NAME.match(ch.name):
            problems.append((table, "", "the name must be 1-32 of a-z, 0-9, '_', '-'"))
        if bool(ch.secret_file) == bool(ch.secret_name):
            problems.append((table, "secret_name", "set exactly one of secret_file, secret_name"))
        if ch.kind == "telegram":
            if not ch.chat_id:
                problems.append((table, "chat_id", "a telegram channel needs chat_id"))
            if re.match(r"^https?://[^\s/]+", ch.base_url) is None:
                problems.append((table, "base_url", "must be an http:// or https:// URL"))
    return problems


def _metrics_problems(metrics: MetricsConfig) -> list[Problem]:
    if not metrics.listen:
        return []
    try:
        address = parse_listen(metrics.listen)
    except ValueError as e:
        return [("metrics", "listen", f"{metrics.listen}: {e}")]
    if not address.is_loopback and not metrics.allow_non_loopback:
        return [
            (
                "metrics",
                "listen",
                f"{address} is not a loopback address; set metrics.allow_non_loopback = true "
                "to serve positions and equity beyond this host",
            )
        ]
    return []


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENDPOINT = re.compile(r"^https?://[^\s/]+(:\d+)?/?$")


def _cluster_problems(cl: ClusterConfig, ex: ExchangeConfig) -> list[Problem]:
    from trendbotd.cluster.fencing import table_timing, timing_problem  # noqa: PLC0415 - no cycle

    if not cl.enabled:
        # a [cluster] table with settings but no endpoints is a mistake, not "off"
        if cl != ClusterConfig():
            return [("cluster", "endpoints", "is required once [cluster] sets anything")]
        return []
    checks = [
        (all(_ENDPOINT.match(e) for e in cl.endpoints), "endpoints", "must be http(s)://host:port"),
        (len(set(cl.endpoints)) == len(cl.endpoints), "endpoints", "has duplicates"),
        (
            cl.leader_key == "" or (cl.leader_key.startswith("/") and " " not in cl.leader_key),
            "leader_key",
            "must start with '/' and hold no spaces",
        ),
        (
            cl.node_name == "" or _NODE_NAME.match(cl.node_name) is not None,
            "node_name",
            "must be 1-63 letters, digits, '_', '.', '-', starting alphanumeric",
        ),
        (2 <= cl.ttl_s <= 3600, "ttl_s", "must be 2..3600"),
        (cl.renew_s > 0, "renew_s", "must be positive"),
        (0 < cl.rpc_timeout_s <= 60, "rpc_timeout_s", "must be in (0, 60]"),
        (1000 <= cl.recv_window_ms <= 60000, "recv_window_ms", "must be 1000..60000"),
        (cl.slack_s >= 0, "slack_s", "must not be negative"),
        (
            not (cl.credentials_file and cl.credential_name),
            "credential_name",
            "set credentials_file or credential_name, not both",
        ),
    ]
    problems = [("cluster", key, message) for ok, key, message in checks if not ok]
    if not problems:
        why = timing_problem(table_timing(cl, ex))
        if why is not None:
            problems.append(("cluster", "ttl_s", why))
    return problems


def _failed(table: str, checks: list[tuple[bool, str, str]]) -> list[Problem]:
    return [(table, key, message) for ok, key, message in checks if not ok]


def _instance_problems(config: Config) -> list[Problem]:
    return _failed(
        "instance",
        [
            (
                bool(_INSTANCE_NAME.match(config.instance.name)),
                "name",
                "must be 1-32 characters of letters, digits, '_', '.', '-', starting alphanumeric",
            )
        ],
    )


def _exchange_problems(ex: ExchangeConfig) -> list[Problem]:
    return _failed(
        "exchange",
        [
            (bool(re.fullmatch(r"[a-z0-9]+", ex.id)), "id", "must be a ccxt exchange id"),
            (
                ex.base_url == "" or re.match(r"^https?://[^\s/]+", ex.base_url) is not None,
                "base_url",
                "must be an http:// or https:// URL",
            ),
            (
                not (ex.credentials_file and ex.credential_name),
                "credential_name",
                "set credentials_file or credential_name, not both",
            ),
            (
                ex.paper or bool(ex.credentials_file or ex.credential_name),
                "paper",
                "live trading (paper = false) needs credentials_file or credential_name",
            ),
            (1000 <= ex.recv_window_ms <= 60000, "recv_window_ms", "must be 1000..60000"),
            (0 < ex.request_timeout_s <= 120, "request_timeout_s", "must be in (0, 120]"),
            (10 <= ex.max_clock_offset_ms <= 5000, "max_clock_offset_ms", "must be 10..5000"),
            (ex.clock_resync_s >= 10, "clock_resync_s", "must be at least 10"),
        ],
    )


def _paper_problems(config: Config) -> list[Problem]:
    pp = config.paper
    return _failed(
        "paper",
        [
            (0 < pp.speed <= 100000, "speed", "must be in (0, 100000]"),
            (pp.start_balance > 0, "start_balance", "must be positive"),
            (0 <= pp.response_delay_ms <= 60000, "response_delay_ms", "must be 0..60000"),
            (0 <= pp.port <= 65535, "port", "must be 0..65535"),
        ],
    )


def _trading_problems(config: Config) -> list[Problem]:
    tr = config.trading
    problems = _failed(
        "trading",
        [
            (len(tr.symbols) >= 1, "symbols", "needs at least one symbol"),
            (len(set(tr.symbols)) == len(tr.symbols), "symbols", "has duplicates"),
            (
                all(re.fullmatch(r"[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+", s) for s in tr.symbols),
                "symbols",
                'must be unified perpetual symbols like "BTC/USDT:USDT"',
            ),
            (tr.timeframe in _TIMEFRAMES, "timeframe", f"must be one of {_TIMEFRAMES}"),
            (1 <= tr.leverage <= 125, "leverage", "must be 1..125"),
        ],
    )
    for table, params in [("strategy", config.strategy)] + [
        (f"strategy.symbols.{s}", p) for s, p in config.strategy_overrides.items()
    ]:
        problems.extend(_strategy_problems(table, params))
    for symbol in config.strategy_overrides:
        if symbol not in tr.symbols:
            problems.append(("strategy.symbols", symbol, "is not in trading.symbols"))
    return problems


def _risk_problems(config: Config) -> list[Problem]:
    rk = config.risk
    problems = _failed(
        "risk",
        [
            (0 < rk.risk_per_trade <= 0.1, "risk_per_trade", "must be in (0, 0.1]"),
            (1 <= rk.max_leverage <= 125, "max_leverage", "must be 1..125"),
        ],
    )
    if config.trading.leverage > rk.max_leverage:
        problems.append(("trading", "leverage", "exceeds risk.max_leverage"))
    return problems + _failed(
        "risk",
        [
            (rk.max_notional > 0, "max_notional", "must be positive"),
            (1 <= rk.max_open_positions <= 100, "max_open_positions", "must be 1..100"),
            (0 < rk.daily_loss_limit <= 1, "daily_loss_limit", "must be in (0, 1]"),
            (0 <= rk.duplicate_window_s <= 3600, "duplicate_window_s", "must be 0..3600"),
            (rk.max_position_ratio >= 1, "max_position_ratio", "must be at least 1"),
            (rk.min_balance >= 0, "min_balance", "must not be negative"),
            (
                0.001 <= rk.emergency_stop_distance <= 0.5,
                "emergency_stop_distance",
                "must be in [0.001, 0.5]",
            ),
        ],
    )


def _service_problems(config: Config) -> list[Problem]:
    sv = config.service
    return _failed(
        "service",
        [
            (5 <= sv.startup_timeout_s <= 3600, "startup_timeout_s", "must be 5..3600"),
            (0.05 <= sv.tick_interval_s <= 3600, "tick_interval_s", "must be 0.05..3600"),
        ],
    )


def semantic_problems(config: Config) -> list[Problem]:
    """Every problem of ``config``, in the order the file's tables are documented."""
    return [
        *_instance_problems(config),
        *_exchange_problems(config.exchange),
        *_ratelimit_problems(config.ratelimit),
        *_metrics_problems(config.metrics),
        *_paper_problems(config),
        *_trading_problems(config),
        *_risk_problems(config),
        *_cluster_problems(config.cluster, config.exchange),
        *_service_problems(config),
        *alerts_problems(config.alerts),
    ]
