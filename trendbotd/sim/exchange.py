"""``SimExchange``: the simulated Binance USD-M exchange, served on 127.0.0.1."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from trendbotd.adapters.clock import SystemClock
from trendbotd.core.clock import Clock
from trendbotd.sim.access import SimAccount
from trendbotd.sim.control import ControlAPI
from trendbotd.sim.desk import OrderDesk
from trendbotd.sim.faults import FaultSet
from trendbotd.sim.market import (
    BASE_PRICES,
    TIMEFRAMES_MS,
    CandleSource,
    CsvCandles,
    GeneratedCandles,
    Tape,
)
from trendbotd.sim.matching import Matching
from trendbotd.sim.persist import SaveStats, StateFile, StatePersister, saved_clock_ms
from trendbotd.sim.ports import ControlHandler
from trendbotd.sim.ratelimit import WeightLimiter
from trendbotd.sim.requestlog import RecordedRequest, RequestLog
from trendbotd.sim.server import SimHTTPServer
from trendbotd.sim.specs import spec_for
from trendbotd.sim.state import SimState

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimConfig:
    symbols: tuple[str, ...] = ("BTC/USDT:USDT",)
    start_balance: Decimal = Decimal(10000)
    seed: int = 1
    regime: str = "mixed"  # "trend" | "range" | "mixed"
    data_csv: Path | None = None  # real candles replayed instead of the generator
    timeframe: str = "1h"  # the generator's base bar (CSV: its own spacing wins)
    clock: Clock | None = None  # None: SystemClock; paper mode passes a ScaledClock
    response_delay_ms: int = 0  # added to every round trip: half inbound, half outbound
    api_key: str | None = None  # None: random, readable as sim.api_key
    api_secret: str | None = None
    port: int = 0  # 0: a free port on 127.0.0.1
    host: str = "127.0.0.1"
    weight_limit_per_minute: int = 2400  # 0 disables the request-weight limit
    # Binance's window is one minute (orders: also 10 s, a sixth of it); tests shorten it.
    weight_window_ms: int = 60_000
    ban_ms: int = 120_000  # the first 418 ban; doubles with each further one
    ban_grace_ms: int = 1000  # requests this soon after a 429 were in flight: no ban
    csv_warmup_bars: int = 500  # CSV replay: bars of history before the start instant
    match_interval_s: float = 0.2  # background matching period (real seconds)
    # Keep the account in this file across restarts: start() loads it if it exists, every
    # change is saved before it is answered, stop() saves. Candles are not stored.
    state_file: Path | None = None
    clock_save_interval_s: float = 1.0  # with no changes, refresh the stored clock this often


@dataclass(slots=True)
class _Runtime:
    server: SimHTTPServer | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


class SimExchange:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        if cfg.timeframe not in TIMEFRAMES_MS:
            raise ValueError(f"unsupported timeframe {cfg.timeframe!r}")
        self.clock: Clock = cfg.clock or SystemClock()
        self.api_key = cfg.api_key or secrets.token_hex(32)
        self.api_secret = cfg.api_secret or secrets.token_hex(32)
        self.clock_skew_ms = 0
        start_ms = self.clock.now_ms()
        specs = {}
        tapes = {}
        for unified in cfg.symbols:
            spec = spec_for(unified)
            specs[spec.id] = spec
            tapes[spec.id] = Tape(self._source(spec.base, start_ms))
        # the account's data, the matching over it, the order desk and the test helpers
        self.state = SimState(
            specs=specs, tapes=tapes, start_balance=cfg.start_balance, now_fn=self.server_time_ms
        )
        self.matching = Matching(self.state)
        self.desk = OrderDesk(self.state, self.matching)
        self.account = SimAccount(self.state, self.matching, self.desk)
        self.faults = FaultSet()
        self.limiter = WeightLimiter(
            limit_per_minute=cfg.weight_limit_per_minute,
            window_ms=cfg.weight_window_ms,
            ban_ms=cfg.ban_ms,
            grace_ms=cfg.ban_grace_ms,
        )
        self.request_log = RequestLog(self.server_time_ms)
        self.control: ControlHandler = ControlAPI(self)
        self.response_delay_ms = cfg.response_delay_ms
        self._rt = _Runtime()
        self._persister: StatePersister | None = None

    def _source(self, base: str, start_ms: int) -> CandleSource:
        cfg = self.config
        if cfg.data_csv is not None:
            csv_source = CsvCandles(Path(cfg.data_csv))
            if not csv_source.first_open_ms <= start_ms <= csv_source.last_open_ms:
                csv_source.replay_from(start_ms, warmup_bars=cfg.csv_warmup_bars)
            return csv_source
        return GeneratedCandles(
            seed=cfg.seed,
            symbol=base,
            regime=cfg.regime,
            timeframe_ms=TIMEFRAMES_MS[cfg.timeframe],
            base_price=BASE_PRICES.get(base, 50.0),
        )

    # ----- lifecycle -----

    @property
    def port(self) -> int:
        if self._rt.server is None:
            raise RuntimeError("the simulated exchange is not started")
        return int(self._rt.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> SimExchange:
        """Serve in background threads. With ``state_file``: first load the account from it
        (once per instance; SimStateError if it is unreadable) and save it (so a file that
        cannot be written fails here, before anything is accepted)."""
        if self._rt.server is not None:
            return self
        persister = self._open_state_file()
        if persister is not None:
            persister.save_now()
        server = SimHTTPServer((self.config.host, self.config.port), self)
        if persister is not None:
            persister.attach()
        self._rt = _Runtime(server=server)
        serve = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sim-http",
            daemon=True,
        )
        match = threading.Thread(target=self._match_loop, name="sim-match", daemon=True)
        self._rt.threads = [serve, match]
        for t in self._rt.threads:
            t.start()
        logger.info(
            "sim.started url=%s symbols=%s regime=%s seed=%s csv=%s",
            self.base_url,
            ",".join(self.state.specs),
            self.config.regime,
            self.config.seed,
            self.config.data_csv,
        )
        return self

    def stop(self) -> None:
        server = self._rt.server
        if server is None:
            return
        self._rt.stop.set()
        server.shutdown()
        server.server_close()
        for t in self._rt.threads:
            t.join(timeout=5)
        self._rt = _Runtime()
        persister = self._persister
        if persister is not None:
            persister.detach()
            persister.save_now()
        logger.info("sim.stopped")

    def __enter__(self) -> SimExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- state file -----

    def _open_state_file(self) -> StatePersister | None:
        cfg = self.config
        if cfg.state_file is None or self._persister is not None:
            return self._persister
        persister = StatePersister(
            self.state,
            StateFile(Path(cfg.state_file)),
            clock_ms=self.clock.now_ms,
            market={
                "seed": cfg.seed,
                "regime": cfg.regime,
                "timeframe": cfg.timeframe,
                "data_csv": None if cfg.data_csv is None else str(cfg.data_csv),
            },
            clock_interval_s=cfg.clock_save_interval_s,
        )
        if not persister.load():
            logger.info("sim.state.new path=%s", persister.path)
        self._persister = persister
        return persister

    @staticmethod
    def saved_clock_ms(path: Path) -> int | None:
        """The sim clock stored in a state file (None if there is no file), so a scaled
        paper clock can resume there instead of jumping back in time."""
        return saved_clock_ms(Path(path))

    @property
    def save_stats(self) -> SaveStats | None:
        """Counts and cost of state-file saves (None without ``state_file``)."""
        return None if self._persister is None else self._persister.stats

    def _match_loop(self) -> None:
        stop = self._rt.stop
        while not stop.wait(self.config.match_interval_s):
            try:
                self.matching.sync()
            except Exception:
                logger.exception("sim.match_failed")

    # ----- time -----

    def server_time_ms(self) -> int:
        """The exchange's clock: the sim clock plus the configured skew."""
        return self.clock.now_ms() + self.clock_skew_ms

    def set_clock_skew_ms(self, skew_ms: int) -> None:
        self.clock_skew_ms = int(skew_ms)
        logger.info("sim.skew ms=%s", skew_ms)

    def advance_clock(self, ms: int) -> None:
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("the sim clock cannot be advanced (use a ManualClock)")
        advance(ms)
        self.matching.sync()

    # ----- request log -----

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.request_log.entries()

    def clear_requests(self) -> None:
        self.request_log.clear()
