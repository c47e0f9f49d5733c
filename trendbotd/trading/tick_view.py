"""What a tick knows about each symbol, gathered for the planner: the journal's side of
it (decided candle, expected position, live stops) and the due symbols' closed candles.

Candles of several due symbols are fetched at once, each on an exchange client of its
own: one ccxt client is not safe to share between threads (its throttle, its last
response headers and the weight governor reading them are per client), so the number of
clients bounds the concurrency. With one client the windows come one after the other.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from trendbotd.core.domain import ZERO, Candle, Market, Position
from trendbotd.core.planner import LiveStop, SymbolView
from trendbotd.core.ports import Exchange
from trendbotd.core.reconcile import covering_stop_intents
from trendbotd.core.records import Intent, IntentState, Purpose
from trendbotd.errors import TransientExchangeError
from trendbotd.journal.store import Journal
from trendbotd.trading.candle_feed import CandleFeed

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JournalSymbol:
    """The journal's side of one symbol, read once."""

    symbol: str
    expected: Decimal | None  # the position the journal expects (None: none recorded)
    stops: tuple[Intent, ...]  # our acknowledged open stops, oldest first

    @classmethod
    def read(
        cls, journal: Journal, symbol: str, *, expected: Mapping[str, Decimal]
    ) -> JournalSymbol:
        stops = journal.orders.open_intents(symbol, purpose=Purpose.STOP)
        acked = tuple(i for i in stops if i.state is IntentState.ACKED)
        return cls(symbol, expected.get(symbol), acked)

    @property
    def stop_price(self) -> Decimal | None:
        """The newest live stop that closes the expected position (never a stale one on
        the other side)."""
        covering = covering_stop_intents(self.stops, self.symbol, self.expected or ZERO)
        return covering[-1].stop_price if covering else None

    def view(self, position: Position | None, market: Market) -> SymbolView:
        live = tuple(LiveStop(i.stop_price or ZERO, i.amount) for i in self.stops)
        return SymbolView(position, self.stop_price, live, market)

    def position_after(self, before: Position | None) -> Position | None:
        """The position the journal now expects, at the entry price last seen."""
        if self.expected is None:
            return before
        entry = before.entry_price if before is not None else ZERO
        return Position(symbol=self.symbol, amount=self.expected, entry_price=entry)


def read_symbol(journal: Journal, symbol: str) -> JournalSymbol:
    return JournalSymbol.read(journal, symbol, expected=journal.account.expected_positions())


@dataclass(frozen=True, slots=True)
class WindowAsk:
    symbol: str
    need: int


Windows = dict[str, list[Candle] | TransientExchangeError]


def fetch_windows(
    feed: CandleFeed,
    asks: Sequence[WindowAsk],
    *,
    sources: Sequence[Exchange],
    last_open_ms: int,
    now_ms: int,
) -> Windows:
    """Each asked symbol's closed candles, or the error its fetch ended in: fetched in
    parallel, one worker per client in ``sources`` (a ccxt client is not thread-safe)."""
    clients: queue.SimpleQueue[Exchange] = queue.SimpleQueue()
    for source in sources:
        clients.put(source)

    def one(ask: WindowAsk) -> list[Candle] | TransientExchangeError:
        client = clients.get()
        try:
            return feed.window(ask.symbol, need=ask.need, last_open_ms=last_open_ms,
                               now_ms=now_ms, source=client)  # fmt: skip
        except TransientExchangeError as e:
            return e
        finally:
            clients.put(client)

    workers = min(len(asks), len(sources))
    if workers <= 1:
        return {ask.symbol: one(ask) for ask in asks}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="candles") as pool:
        return dict(zip((a.symbol for a in asks), pool.map(one, asks), strict=True))
