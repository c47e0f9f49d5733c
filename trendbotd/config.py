"""Configuration: TOML (stdlib tomllib) validated into frozen, typed sections.

Every error names the file, the key and, where the key appears in the file, its line:
``/etc/trendbotd/trendbotd.toml:12: risk.risk_per_trade: expected a number, got "1%"``.
Unknown keys are errors: a typo must never silently fall back to a default.
Secrets never live here: the config only names where credentials are kept.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from trendbotd.core.listen_address import parse_listen
from trendbotd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/trendbotd/trendbotd.toml")

_INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")

ShutdownPolicy = Literal["leave", "cancel_entries", "flatten"]
StrategyKind = Literal["ema_cross", "donchian"]
Regime = Literal["trend", "range", "mixed"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class InstanceConfig:
    name: str = "trendbotd"  # names the lock file, the journal and the log identifier
    runtime_dir: Path | None = None  # lock lives here; default /run/trendbotd with fallbacks
    state_dir: Path | None = None  # journal lives here; default /var/lib/trendbotd with fallbacks


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    id: str = "binanceusdm"
    paper: bool = True  # start the built-in simulated exchange in-process and trade on it
    base_url: str = ""  # point every API entry at this host (simulator, proxy, tests)
    demo: bool = False  # Binance demo trading hosts
    credentials_file: Path | None = None  # TOML with api_key/api_secret, mode 0600 or stricter
    credential_name: str = ""  # name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    max_clock_offset_ms: int = 500  # refuse orders while |offset| or its uncertainty exceed it
    clock_resync_s: float = 600.0


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The request-weight governor (live trading; the paper simulator is local)."""

    weight_limit: int = 2400  # the exchange's request weight per window and IP (USD-M: 2400)
    orders_per_10s: int = 300  # the account's new orders per 10 s
    orders_per_minute: int = 1200
    window_s: float = 60.0  # the exchange's weight window (Binance: one minute)
    share: float = 0.8  # below this share of each limit every request goes
    urgent_share: float = 0.95  # protective stops and closes may go up to this share
    max_wait_s: float = 5.0  # longest in-line wait; longer: held back, retried later
    # Budget shared by every instance on the host (Binance counts per IP); default:
    # ratelimit-<exchange>-<host>.json in the runtime directory, beside the lock.
    shared_file: Path | None = None


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """The simulated exchange started by ``--paper`` (or ``exchange.paper = true``)."""

    speed: float = 1.0  # replay candles this many times faster than real time
    seed: int = 1
    regime: Regime = "mixed"
    data_csv: Path | None = None  # real candles instead of the generator
    start_balance: Decimal = Decimal(10000)
    response_delay_ms: int = 0  # delay every answer (shows that READY waits for the sync)
    port: int = 0  # 0 picks a free port on 127.0.0.1


@dataclass(frozen=True, slots=True)
class StrategyParams:
    kind: StrategyKind = "ema_cross"
    fast: int = 20
    slow: int = 50
    breakout: int = 55  # donchian entry channel
    exit_breakout: int = 20  # donchian exit channel
    atr_period: int = 14
    atr_stop_mult: float = 2.0  # initial stop distance in ATRs
    trail_mult: float = 3.0  # trailing exit distance in ATRs
    # Trend filter: enter only when the efficiency ratio (net move / path length) over
    # this many bars reaches min_efficiency; 0 disables it. Exits are never filtered.
    efficiency_period: int = 150
    min_efficiency: float = 0.15
    allow_short: bool = True


@dataclass(frozen=True, slots=True)
class TradingConfig:
    symbols: tuple[str, ...] = ("BTC/USDT:USDT",)
    timeframe: str = "1h"
    leverage: int = 3


@dataclass(frozen=True, slots=True)
class RiskConfig:
    risk_per_trade: float = 0.01  # fraction of equity lost if the initial stop is hit
    max_leverage: int = 5
    max_notional: Decimal = Decimal(50000)
    max_open_positions: int = 3
    daily_loss_limit: float = 0.05  # fraction of start-of-day equity; kill switch for entries
    duplicate_window_s: float = 60.0
    max_position_ratio: float = 2.0  # position above this multiple of expected blocks adding
    min_balance: Decimal = Decimal(10)  # below this the balance is implausible: no new entries
    # A position found without a stop (and no known stop price) gets one this far from
    # the mark, on the losing side, before READY.
    emergency_stop_distance: float = 0.05
    shutdown_policy: ShutdownPolicy = "leave"
    reduce_only: bool = False  # operator switch: manage exits only


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    startup_timeout_s: float = 90.0  # keep below the unit's TimeoutStartSec
    log_level: LogLevel = "info"
    log_file: Path | None = None  # --daemon mode; default is syslog
    # Between candles the loop re-syncs (positions, stops, balance) this often; a candle
    # close wakes it on time regardless.
    tick_interval_s: float = 60.0


AlertChannelKind = Literal["webhook", "telegram"]
SeverityName = Literal["info", "warning", "error", "critical"]


@dataclass(frozen=True, slots=True)
class AlertChannelConfig:
    """``[alerts.channels.NAME]``. The secret (webhook URL, bot token) is never here: it is
    read from ``secret_file`` (mode 0600) or ``$CREDENTIALS_DIRECTORY/<secret_name>``."""

    name: str = ""
    kind: AlertChannelKind = "webhook"
    min_severity: SeverityName = "warning"
    secret_file: Path | None = None  # TOML: url = "..." (webhook) / bot_token = "..." (telegram)
    secret_name: str = ""  # systemd LoadCredential= name
    base_url: str = "https://api.telegram.org"  # telegram: the Bot API host (tests: a fake)
    chat_id: str = ""  # telegram: the chat to write to


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    outbox_max: int = 1000  # alerts kept; beyond it the oldest go (delivered ones first)
    send_timeout_s: float = 10.0  # one HTTP request to a channel
    retry_base_s: float = 2.0  # back-off after a failed send: 2, 4, 8 ... s
    retry_max_s: float = 300.0
    rate_limit: int = 20  # messages per channel per rate_window_s
    rate_window_s: float = 60.0
    coalesce_window_s: float = 60.0  # repeats waiting this close together become one message
    stop_flush_s: float = 3.0  # at stop, wait this long for pending alerts to go out
    unreachable_alert_s: float = 300.0  # exchange unreachable this long: one alert, then "back"
    channels: tuple[AlertChannelConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus exposition (trendbotd.adapters.metrics); changes need a restart."""

    listen: str = ""  # "127.0.0.1:9464" serves /metrics there; empty: off
    allow_non_loopback: bool = False  # metrics name positions and equity: loopback only


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Active/standby across hosts through a leader key in etcd. Off without endpoints."""

    endpoints: tuple[str, ...] = ()  # etcd client URLs, e.g. "http://10.0.0.1:2379"
    leader_key: str = ""  # default: /trendbotd/<instance.name>/leader
    node_name: str = ""  # default: the host name
    ttl_s: int = 30  # lease TTL (etcd counts whole seconds)
    renew_s: float = 5.0  # renew the lease this often, counted from when it was sent
    rpc_timeout_s: float = 2.0  # every etcd call gives up after this
    recv_window_ms: int = 3000  # orders are signed with this recvWindow while clustered
    slack_s: float = 2.5  # margin on top of recv_window and the clock bound
    ca_file: Path | None = None  # CA bundle for https:// endpoints
    # etcd user/password (TOML: user, password), never in this file:
    credentials_file: Path | None = None  # mode 0600 or stricter
    credential_name: str = ""  # name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None = None  # the file it came from; None for built-in defaults
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)
    strategy: StrategyParams = field(default_factory=StrategyParams)
    # per-symbol overrides: [strategy.symbols."ETH/USDT:USDT"] fast = 10
    strategy_overrides: dict[str, StrategyParams] = field(default_factory=dict)
    risk: RiskConfig = field(default_factory=RiskConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def strategy_for(self, symbol: str) -> StrategyParams:
        return self.strategy_overrides.get(symbol, self.strategy)

    def describe(self) -> str:
        """One line per setting for the start-up log. Holds no secrets by construction."""
        lines = [f"config.source={self.source or '<built-in defaults>'}"]
        sections = ("instance", "exchange", "ratelimit", "paper", "trading", "strategy")
        for name in (*sections, "risk", "service", "alerts", "metrics", "cluster"):
            section = getattr(self, name)
            for f in dataclasses.fields(section):
                lines.append(f"config.{name}.{f.name}={getattr(section, f.name)!s}")
        for symbol, params in sorted(self.strategy_overrides.items()):
            lines.append(f"config.strategy.symbols.{symbol}={params}")
        return "\n".join(lines)


_SECTIONS: dict[str, type[Any]] = {
    "instance": InstanceConfig,
    "exchange": ExchangeConfig,
    "ratelimit": RateLimitConfig,
    "paper": PaperConfig,
    "trading": TradingConfig,
    "strategy": StrategyParams,
    "risk": RiskConfig,
    "service": ServiceConfig,
    "alerts": AlertsConfig,
    "metrics": MetricsConfig,
    "cluster": ClusterConfig,
}


def load_config(path: Path | None, *, paper: bool = False) -> Config:
    """Load and validate. ``path=None`` means the default path if it exists, else defaults.

    ``paper=True`` (the ``--paper`` flag) forces the simulated exchange whatever the file says.
    """
    if path is None:
        if DEFAULT_CONFIG_PATH.exists():
            path = DEFAULT_CONFIG_PATH
        else:
            config = Config()
            return _force_paper(config) if paper else config
    text = _read(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from e
    config = _build(raw, path=path, text=text)
    _check_semantics(config, path=path, text=text)
    return _force_paper(config) if paper else config


def load_alert_config(path: Path | None) -> Config:
    """Only ``[instance]`` and ``[alerts]``, validated; every other table is ignored.

    ``trendbotd alert`` must still report a unit that failed on a mistake elsewhere in the
    file (exit 78), so it does not let that mistake silence the alert."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    text = _read(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from e
    wanted = {k: v for k, v in raw.items() if k in ("instance", "alerts")}
    config = _build(wanted, path=path, text=text)
    problems = _alerts_problems(config.alerts)
    if not _INSTANCE_NAME.match(config.instance.name):
        problems.insert(0, ("instance", "name", "is not a valid instance name"))
    if problems:
        table, key, message = problems[0]
        raise ConfigError(f"{_where(path, text, table, key or None)}: {table}.{key}: {message}")
    return config


def _force_paper(config: Config) -> Config:
    return dataclasses.replace(config, exchange=dataclasses.replace(config.exchange, paper=True))


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{path}: is a directory, not a config file") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: config file not readable (permission denied)") from e
    except OSError as e:
        raise ConfigError(f"{path}: config file not readable: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e


def _where(path: Path, text: str, table: str, key: str | None) -> str:
    line = _line_of(text, table, key)
    return f"{path}:{line}" if line else str(path)


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Best-effort line number of ``key`` inside ``[table]`` (or of the table header)."""
    current = ""
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1).replace('"', "").replace(" ", "")
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table:
            km = re.match(r'^\s*"?([A-Za-z0-9_.:/-]+)"?\s*=', line)
            if km and km.group(1) == key:
                return number
    return None


def _build(raw: dict[str, Any], *, path: Path, text: str) -> Config:
    sections: dict[str, Any] = {}
    overrides: dict[str, StrategyParams] = {}
    for name, value in raw.items():
        if name not in _SECTIONS:
            known = ", ".join(sorted(_SECTIONS))
            raise ConfigError(
                f"{_where(path, text, name, None)}: unknown section [{name}] (known: {known})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(path, text, '', name)}: {name} must be a [{name}] table")
        if name == "strategy" and "symbols" in value:
            per_symbol = value.pop("symbols")
            overrides = _build_overrides(per_symbol, base=value, path=path, text=text)
        if name == "alerts" and "channels" in value:
            value["channels"] = _build_channels(value["channels"], path=path, text=text)
        sections[name] = _build_section(_SECTIONS[name], value, table=name, path=path, text=text)
    return Config(source=path, strategy_overrides=overrides, **sections)


def _build_overrides(
    per_symbol: Any, *, base: dict[str, Any], path: Path, text: str
) -> dict[str, StrategyParams]:
    if not isinstance(per_symbol, dict):
        raise ConfigError(f"{path}: strategy.symbols must be a table of per-symbol tables")
    result: dict[str, StrategyParams] = {}
    for symbol, table in per_symbol.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: strategy.symbols.{symbol!r} must be a table")
        merged = {**base, **table}
        result[symbol] = _build_section(
            StrategyParams, merged, table=f"strategy.symbols.{symbol}", path=path, text=text
        )
    return result


def _build_channels(tables: Any, *, path: Path, text: str) -> tuple[AlertChannelConfig, ...]:
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: alerts.channels must be a table of [alerts.channels.NAME]")
    result: list[AlertChannelConfig] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: alerts.channels.{name} must be a table")
        if "name" in table:
            raise ConfigError(f"{path}: alerts.channels.{name}: the table name is the name")
        result.append(
            _build_section(
                AlertChannelConfig,
                {**table, "name": name},
                table=f"alerts.channels.{name}",
                path=path,
                text=text,
            )
        )
    return tuple(result)


def _build_section(
    cls: type[Any], values: dict[str, Any], *, table: str, path: Path, text: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{_where(path, text, table, key)}: {table}.{key}: unknown key "
                f"(known: {', '.join(sorted(known))})"
            )
        try:
            kwargs[key] = _coerce(value, hints[key])
        except _TypeMismatchError as e:
            raise ConfigError(
                f"{_where(path, text, table, key)}: {table}.{key}: expected {e.expected}, "
                f"got {_show(value)}"
            ) from None
    return cls(**kwargs)


class _TypeMismatchError(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _show(value: Any) -> str:
    shown = repr(value) if not isinstance(value, str) else f'"{value}"'
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _coerce(value: Any, hint: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per supported type
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0])
    if origin is Literal:
        if value not in args:
            raise _TypeMismatchError("one of " + ", ".join(f'"{a}"' for a in args))
        return value
    if origin is tuple and args and args[0] is AlertChannelConfig:
        return value  # built by _build_channels
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _TypeMismatchError("a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise _TypeMismatchError("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _TypeMismatchError("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _TypeMismatchError("a number")
        return float(value)
    if hint is Decimal:
        return _to_decimal(value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise _TypeMismatchError("a path string")
        return Path(value)
    if hint is str:
        if not isinstance(value, str):
            raise _TypeMismatchError("a string")
        return value
    raise _TypeMismatchError(str(hint))  # pragma: no cover - a schema field of unsupported type


def _to_decimal(value: Any) -> Decimal:
    # Money as a string ("10000.5") keeps exact decimals; integers are exact too.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _TypeMismatchError("a decimal number or a string holding one")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise _TypeMismatchError("a decimal number or a string holding one") from None
    if not result.is_finite():
        raise _TypeMismatchError("a finite decimal number")
    return result


def _strategy_problems(table: str, params: StrategyParams) -> list[tuple[str, str, str]]:
    problems: list[tuple[str, str, str]] = []

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


def _ratelimit_problems(rl: RateLimitConfig) -> list[tuple[str, str, str]]:
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


def _alerts_problems(alerts: AlertsConfig) -> list[tuple[str, str, str]]:
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


def _metrics_problems(metrics: MetricsConfig) -> list[tuple[str, str, str]]:
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


def _cluster_problems(cl: ClusterConfig, ex: ExchangeConfig) -> list[tuple[str, str, str]]:
    from trendbotd.cluster.fencing import Timing, timing_problem  # noqa: PLC0415 - no cycle

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
        timing = Timing(
            ttl_s=cl.ttl_s,
            renew_s=cl.renew_s,
            rpc_timeout_s=cl.rpc_timeout_s,
            recv_window_ms=cl.recv_window_ms,
            clock_bound_ms=ex.max_clock_offset_ms,
            slack_s=cl.slack_s,
        )
        why = timing_problem(timing)
        if why is not None:
            problems.append(("cluster", "ttl_s", why))
    return problems


def _check_semantics(config: Config, *, path: Path, text: str) -> None:
    problems: list[tuple[str, str, str]] = []  # (table, key, message)

    def check(ok: bool, table: str, key: str, message: str) -> None:
        if not ok:
            problems.append((table, key, message))

    check(
        bool(_INSTANCE_NAME.match(config.instance.name)),
        "instance",
        "name",
        "must be 1-32 characters of letters, digits, '_', '.', '-', starting alphanumeric",
    )
    ex = config.exchange
    check(bool(re.fullmatch(r"[a-z0-9]+", ex.id)), "exchange", "id", "must be a ccxt exchange id")
    check(
        ex.base_url == "" or re.match(r"^https?://[^\s/]+", ex.base_url) is not None,
        "exchange",
        "base_url",
        "must be an http:// or https:// URL",
    )
    check(
        not (ex.credentials_file and ex.credential_name),
        "exchange",
        "credential_name",
        "set credentials_file or credential_name, not both",
    )
    check(
        ex.paper or bool(ex.credentials_file or ex.credential_name),
        "exchange",
        "paper",
        "live trading (paper = false) needs credentials_file or credential_name",
    )
    check(1000 <= ex.recv_window_ms <= 60000, "exchange", "recv_window_ms", "must be 1000..60000")
    check(0 < ex.request_timeout_s <= 120, "exchange", "request_timeout_s", "must be in (0, 120]")
    check(
        10 <= ex.max_clock_offset_ms <= 5000,
        "exchange",
        "max_clock_offset_ms",
        "must be 10..5000",
    )
    check(ex.clock_resync_s >= 10, "exchange", "clock_resync_s", "must be at least 10")
    problems.extend(_ratelimit_problems(config.ratelimit))
    problems.extend(_metrics_problems(config.metrics))
    pp = config.paper
    check(0 < pp.speed <= 100000, "paper", "speed", "must be in (0, 100000]")
    check(pp.start_balance > 0, "paper", "start_balance", "must be positive")
    check(0 <= pp.response_delay_ms <= 60000, "paper", "response_delay_ms", "must be 0..60000")
    check(0 <= pp.port <= 65535, "paper", "port", "must be 0..65535")
    tr = config.trading
    check(len(tr.symbols) >= 1, "trading", "symbols", "needs at least one symbol")
    check(len(set(tr.symbols)) == len(tr.symbols), "trading", "symbols", "has duplicates")
    check(
        all(re.fullmatch(r"[A-Z0-9]+/[A-Z0-9]+:[A-Z0-9]+", s) for s in tr.symbols),
        "trading",
        "symbols",
        'must be unified perpetual symbols like "BTC/USDT:USDT"',
    )
    check(tr.timeframe in _TIMEFRAMES, "trading", "timeframe", f"must be one of {_TIMEFRAMES}")
    check(1 <= tr.leverage <= 125, "trading", "leverage", "must be 1..125")
    for table, params in [("strategy", config.strategy)] + [
        (f"strategy.symbols.{s}", p) for s, p in config.strategy_overrides.items()
    ]:
        problems.extend(_strategy_problems(table, params))
    for symbol in config.strategy_overrides:
        check(symbol in tr.symbols, "strategy.symbols", symbol, "is not in trading.symbols")
    rk = config.risk
    check(0 < rk.risk_per_trade <= 0.1, "risk", "risk_per_trade", "must be in (0, 0.1]")
    check(1 <= rk.max_leverage <= 125, "risk", "max_leverage", "must be 1..125")
    check(tr.leverage <= rk.max_leverage, "trading", "leverage", "exceeds risk.max_leverage")
    check(rk.max_notional > 0, "risk", "max_notional", "must be positive")
    check(1 <= rk.max_open_positions <= 100, "risk", "max_open_positions", "must be 1..100")
    check(0 < rk.daily_loss_limit <= 1, "risk", "daily_loss_limit", "must be in (0, 1]")
    check(0 <= rk.duplicate_window_s <= 3600, "risk", "duplicate_window_s", "must be 0..3600")
    check(rk.max_position_ratio >= 1, "risk", "max_position_ratio", "must be at least 1")
    check(rk.min_balance >= 0, "risk", "min_balance", "must not be negative")
    check(
        0.001 <= rk.emergency_stop_distance <= 0.5,
        "risk",
        "emergency_stop_distance",
        "must be in [0.001, 0.5]",
    )
    problems.extend(_cluster_problems(config.cluster, ex))
    sv = config.service
    check(5 <= sv.startup_timeout_s <= 3600, "service", "startup_timeout_s", "must be 5..3600")
    check(0.05 <= sv.tick_interval_s <= 3600, "service", "tick_interval_s", "must be 0.05..3600")
    problems.extend(_alerts_problems(config.alerts))
    if problems:
        table, key, message = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ConfigError(f"{_where(path, text, table, key)}: {table}.{key}: {message}{more}")
