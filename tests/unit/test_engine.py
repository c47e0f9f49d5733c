"""The tick against an in-memory exchange that counts every request: what a tick between
candles costs, what a decision tick costs, what goes out before an entry, and that the due
symbols' candles are fetched at once when the engine has clients for it."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from orders_fakes import POLICY, SYMBOL, FakeExchange

from trendbotd.config import Config, TradingConfig
from trendbotd.core.clock import ManualClock
from trendbotd.core.domain import AccountMode, AccountSnapshot, Balance, Candle, ClockOffset
from trendbotd.errors import TransientExchangeError
from trendbotd.journal.store import Journal, open_journal
from trendbotd.trading.engine import CANDLE_GRACE_MS, Engine
from trendbotd.trading.executor import OrderExecutor
from trendbotd.trading.positions import PositionManager

HOUR = 3_600_000
T0 = 1_700_000_000_000 // HOUR * HOUR + CANDLE_GRACE_MS  # just after a candle closed
TEN = tuple(f"{base}/USDT:USDT" for base in "ABCDEFGHIJ")


@dataclass
class CountingExchange(FakeExchange):
    """FakeExchange that counts every request and serves hourly candles up to now:
    flat at 100 until ``rise_from_ms``, then 1% up each hour."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    rise_from_ms: int | None = None
    # the first candle request of each client waits here until every client is in one:
    # proof that they are fetched at once, on any machine however busy
    together: threading.Barrier | None = None
    balance_error: Exception | None = None
    requests: Counter[str] = field(default_factory=Counter)

    def server_now_ms(self) -> int:
        return self.clock.now_ms()

    def fetch_balance(self) -> Balance:
        self.requests["balance"] += 1
        if self.balance_error is not None:
            raise self.balance_error
        return super().fetch_balance()

    def fetch_positions(self, symbols: object) -> list:  # type: ignore[override,type-arg]
        self.requests["positions"] += 1
        return super().fetch_positions(symbols)  # type: ignore[arg-type]

    def fetch_open_orders(self, symbols: object) -> list:  # type: ignore[override,type-arg]
        self.requests["open_orders"] += 1
        return super().fetch_open_orders(symbols)  # type: ignore[arg-type]

    def create_order(self, request: object) -> object:  # type: ignore[override]
        self.requests["create_order"] += 1
        return super().create_order(request)  # type: ignore[arg-type]

    def fetch_candles(
        self, symbol: str, *, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]:
        self.requests["candles"] += 1
        if self.together is not None and self.requests["candles"] == 1:
            self.together.wait(timeout=60)  # BrokenBarrierError: they were not at once
        forming = self.clock.now_ms() // HOUR * HOUR
        start = since_ms if since_ms is not None else forming - (limit - 1) * HOUR
        opens = range(start, forming + 1, HOUR)
        return [self._candle(t) for t in opens][:limit]

    def _candle(self, open_ms: int) -> Candle:
        close = 100.0
        if self.rise_from_ms is not None and open_ms >= self.rise_from_ms:
            close = 100.0 * 1.01 ** ((open_ms - self.rise_from_ms) // HOUR + 1)
        return Candle(open_ms, close, close * 1.002, close * 0.998, close, 1.0)

    def step(self) -> None:
        """The next candle closes."""
        self.clock.advance(HOUR)
        last = self._candle(self.clock.now_ms() // HOUR * HOUR - HOUR)
        self.price = Decimal(str(last.close))


@dataclass
class Bot:
    engine: Engine
    fake: CountingExchange
    journal: Journal

    def tick(self) -> tuple[str, Counter[str]]:
        self.fake.requests.clear()
        status = self.engine.tick()
        return status, Counter(self.fake.requests)


def make_bot(
    tmp_path: Path,
    *,
    symbols: tuple[str, ...] = (SYMBOL,),
    fake: CountingExchange | None = None,
    candle_sources: tuple[CountingExchange, ...] = (),
) -> Bot:
    fake = fake or CountingExchange()
    journal = open_journal(tmp_path / "bot.db")
    executor = OrderExecutor(
        exchange=fake, journal=journal, clock=fake.clock, instance="bot", policy=POLICY
    )
    pm = PositionManager(executor=executor, symbols=symbols, close_rounds=4)
    snapshot = AccountSnapshot(
        taken_at_ms=T0,
        clock=ClockOffset(0, 1, 0, 5),
        mode=AccountMode.ONE_WAY,
        balance=fake.balance,
        positions=(),
        open_orders=(),
        markets=fake.load_markets(symbols),
    )
    config = dataclasses.replace(Config(), trading=TradingConfig(symbols=symbols))
    engine = Engine(config=config, exchange=fake, journal=journal, positions=pm,
                    snapshot=snapshot, candle_sources=candle_sources)  # fmt: skip
    return Bot(engine, fake, journal)


@pytest.fixture
def tmp_bots(tmp_path: Path) -> Iterator[list[Bot]]:
    bots: list[Bot] = []
    yield bots
    for bot in bots:
        bot.journal.close()


@pytest.mark.parametrize("symbols", [(SYMBOL,), TEN], ids=["1 symbol", "10 symbols"])
def test_request_counts_of_a_decision_tick_and_a_tick_between_candles(
    tmp_path: Path, tmp_bots: list[Bot], symbols: tuple[str, ...]
) -> None:
    bot = make_bot(tmp_path, symbols=symbols)
    tmp_bots.append(bot)
    n = len(symbols)
    status, first = bot.tick()  # the first decision: one full window per symbol
    assert status.startswith("normal | equity 10000")
    assert first == {"positions": 2, "candles": n, "balance": 1, "open_orders": 1}
    bot.fake.clock.advance(60_000)
    _, between = bot.tick()  # the candle is decided: a sync and nothing else
    assert between == {"balance": 1, "open_orders": 1, "positions": 1}
    bot.fake.step()
    _, decision = bot.tick()  # the next candle: one top-up per symbol
    assert decision == {"positions": 2, "candles": n, "balance": 1, "open_orders": 1}
    assert bot.engine.ms_until_next_decision() > 0 and not bot.engine.has_pending


def test_an_entry_from_flat_goes_out_after_the_positions_and_the_candles(
    tmp_path: Path, tmp_bots: list[Bot]
) -> None:
    fake = CountingExchange(rise_from_ms=T0 + 5 * HOUR)
    bot = make_bot(tmp_path, fake=fake)
    tmp_bots.append(bot)
    bot.tick()
    for _ in range(30):
        fake.step()
        fake.calls.clear()
        status, requests = bot.tick()
        if requests["create_order"]:
            break
    else:
        raise AssertionError("no entry in 30 rising candles")
    first_order = next(n for n, c in enumerate(fake.calls) if c[0] == "create_order")
    # flat and nothing moved since the last sync: no balance or orders listing first
    assert [c[0] for c in fake.calls[:first_order]] == ["fetch_positions"]
    assert requests["balance"] == 1 and requests["open_orders"] >= 1, "the sync after"
    assert " long " in status and " stop " in status
    decisions = bot.journal.decisions.guard_decisions(limit=10)
    assert decisions == []


def test_ten_due_symbols_fetch_their_candles_at_once(tmp_path: Path, tmp_bots: list[Bot]) -> None:
    together = threading.Barrier(4)
    sources = tuple(CountingExchange(together=together) for _ in range(4))
    bot = make_bot(tmp_path, symbols=TEN, candle_sources=sources)
    tmp_bots.append(bot)
    _, requests = bot.tick()  # one after the other, the first request would wait in vain
    assert sum(s.requests["candles"] for s in sources) == 10
    assert all(s.requests["candles"] >= 1 for s in sources)
    assert requests["candles"] == 0, "the trading client is not used for candles"


def test_a_failed_balance_read_is_asked_once_and_shown_unknown(
    tmp_path: Path, tmp_bots: list[Bot]
) -> None:
    fake = CountingExchange(balance_error=TransientExchangeError("fetch_balance: timeout"))
    bot = make_bot(tmp_path, fake=fake)
    tmp_bots.append(bot)
    status, requests = bot.tick()
    assert requests["balance"] == 1, "never read again within the tick"
    assert status.startswith("normal | balance unknown")
