"""One intent, top to bottom: journal -> gates -> send -> resolve. Write-ahead, never two
orders for one intent.

Life of an intent::

    PENDING (committed) -> SENT (committed, attempt counted) -> request
        reply                   -> ACKED / FILLED / CANCELED (adopted from the reply)
        refused (-2022, -2019..) -> REJECTED
        not executed (429, -1021) -> PENDING again, re-sent with the SAME client id
        anything else            -> UNKNOWN -> query by client id (bounded):
            found                -> adopt its real state
            confirmed absent     -> re-send with the SAME id, or ABANDONED by rule;
                                    an entry only while the position agrees (absence.py)
            no answer            -> stays UNKNOWN; the caller must not trade the symbol

"Confirmed absent" only counts once the request is older than the exchange's recvWindow
(plus a margin): after that the exchange would reject a delayed copy of it, so a re-send
cannot make two orders. A duplicate-id error (-4116) means the order exists: it is
queried, never treated as a rejection.

The entry with its stop (protect) is ``trading/order_flow.py``, which calls ``submit`` for
each of its intents; the questions to the exchange are ``trading/order_queries.py``.

Worst case of one order (``ExecutorPolicy.from_config``; each query or read is one adapter
read: at most 4 requests within 10 s, ``core.retry.DEFAULT_READ_RETRY``):
- sends: the create request is never retried blindly; it goes again with the same client
  id only after the exchange refused it unexecuted (429, -1021) or confirmed it absent, at
  most ``max_sends`` = 3 sends per intent, counted across restarts;
- one resolution by client id (``OrderQueries.lookup``): at most ``query_attempts`` = 3
  failed queries (pauses 1, 2, 4 s) and 4 answered ones, so at most 7 x 4 = 28 requests
  and about 3 x 10 + 7 = 37 s, plus one wait of the recvWindow + 1 s (6 s by default)
  before "absent" is believed (4 such waits at most, if the clock does not move);
- an entry the position doubts (``core.absence``) adds at most 3 rounds of a position read,
  a settle wait and one more resolution;
- an acknowledged market order is asked for its fill at most ``fill_polls`` = 5 times
  (pauses 0.1 to 1.6 s), each one resolution without the settle wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from trendbotd.core import telemetry
from trendbotd.core.clock import Clock
from trendbotd.core.domain import ZERO, Order, OrderType
from trendbotd.core.ports import Exchange
from trendbotd.core.records import (
    WOULD_TRIGGER,
    Intent,
    IntentSpec,
    IntentState,
    Purpose,
    TradingMode,
)
from trendbotd.errors import (
    ClockNotSyncedError,
    ClockSkewError,
    DuplicateClientOrderIdError,
    ExchangeAuthError,
    ExchangeError,
    InvalidOrderError,
    NotLeaderError,
    RateLimitedError,
    TrendbotError,
)
from trendbotd.exitcodes import ExitCode
from trendbotd.journal.store import Journal
from trendbotd.trading.crashpoints import CrashHook, NoCrashPoints
from trendbotd.trading.intent_book import IntentBook
from trendbotd.trading.order_queries import BELIEVED, ExecutorPolicy, OrderQueries

__all__ = ["EntryBlockedError", "ExecutorPolicy", "OrderExecutor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
WOULD_TRIGGER_CODE = -2021
_DOUBTED = "absent in queries, but the position shows more than the journal expects"


class EntryBlockedError(TrendbotError):
    """An entry was submitted while the journal's mode forbids entries (a caller bug)."""

    exit_code = ExitCode.FAILURE


class OrderExecutor:
    def __init__(
        self,
        *,
        exchange: Exchange,
        journal: Journal,
        clock: Clock,
        instance: str,
        policy: ExecutorPolicy,
        crash: CrashHook | None = None,
        waiting: Callable[[float], None] | None = None,
        fence: Callable[[], bool] | None = None,
    ) -> None:
        """``waiting(seconds)`` is told before every pause (watchdog / start-timeout).
        ``fence()``, with [cluster], is True only while this node may change orders (the
        leader inside its send window); every create and cancel asks it first."""
        self.exchange = exchange
        self.journal = journal
        self.clock = clock
        self.instance = instance
        self.policy = policy
        self.crash: CrashHook = crash or NoCrashPoints()
        self.book = IntentBook(journal=journal, clock=clock, instance=instance)
        self.queries = OrderQueries(exchange=exchange, clock=clock, policy=policy, waiting=waiting)
        self._fence = fence

    # ----- public -----

    def client_id(self, spec: IntentSpec) -> str:
        return self.book.client_id(spec)

    def submit(self, spec: IntentSpec) -> Intent:
        """One intent's path: journal -> gates -> send -> resolve. An intent already
        journalled under the same id is driven forward (queried, never blindly re-sent)
        or returned if final."""
        cid = self.client_id(spec)
        existing = self.journal.orders.get_intent(cid)
        if existing is not None:
            if existing.state.is_final:
                logger.info("order.already_final cid=%s state=%s", cid, existing.state)
                return existing
            logger.warning("order.resume cid=%s state=%s", cid, existing.state)
            return self.drive(existing, allow_resend=True)
        if spec.purpose is Purpose.ENTRY:
            self.require_entries_allowed(cid)
        self.crash.hit("before_journal")
        intent = self.book.add(spec, IntentState.PENDING)
        logger.info("order.journalled %s", intent.describe())
        return self.drive(intent, allow_resend=True)

    def require_entries_allowed(self, cid: str) -> None:
        mode = self.journal.controls.mode()
        if mode.mode is not TradingMode.NORMAL:
            raise EntryBlockedError(f"entry {cid} refused: mode is {mode.mode} ({mode.reason})")

    def drive(self, intent: Intent, *, allow_resend: bool) -> Intent:
        """Move a non-final intent as far as it can go now.

        ``allow_resend=False`` is the startup resolver: every intent is queried by id and
        one the exchange confirms absent is abandoned, not re-sent: a decision made before
        a crash is stale and the engine decides afresh.

        A state machine, not a retry: each turn moves the intent (send, resolve) and the
        sends are bounded by ``max_sends`` across restarts.
        """
        while True:
            state = intent.state
            if state.is_final:
                return intent
            if state is IntentState.ACKED:
                return self._await_market_fill(intent)
            if state is IntentState.PENDING and allow_resend:
                if not self._may_resend(intent):
                    return self.book.abandon(intent, intent.last_error or "send attempts used up")
                intent = self._send(intent)
                continue
            intent = self._resolve(intent, allow_resend=allow_resend)
            if intent.state is IntentState.UNKNOWN:
                return intent  # no answer: the next sync asks again

    def refresh(self, intent: Intent) -> Intent:
        """Ask the exchange about one ACKED intent (a resting entry, a live stop)."""
        found = self.queries.lookup(intent, confirm_absent=False)
        if found.order is None:
            return intent
        return self.book.adopt(intent, found.order)

    def cancel(self, intent: Intent, *, reason: str) -> Intent:
        """Cancel a resting order of ours; adopt whatever the exchange says it became."""
        logger.info("order.cancel cid=%s reason=%s", intent.client_order_id, reason)
        self._check_fence(intent)
        order: Order | None
        try:
            order = self.exchange.cancel_order_by_client_id(
                intent.symbol, intent.client_order_id, conditional=intent.conditional
            )
        except ExchangeAuthError:
            raise
        except ExchangeError as e:
            # Gone already (filled, triggered) or outcome unknown: ask.
            logger.warning("order.cancel_failed cid=%s error=%s", intent.client_order_id, e)
            order = None
        if order is None:
            order = self.queries.lookup(intent, confirm_absent=False).order
        if order is None:
            logger.error("order.cancel_unresolved cid=%s", intent.client_order_id)
            return intent
        return self.book.adopt(intent, order)

    def read_with_retry(self, what: str, read: Callable[[], T]) -> T:
        """A read-only exchange call with bounded retries; the last error propagates."""
        return self.queries.read_with_retry(what, read)

    def pause(self, seconds: float, why: str) -> None:
        """Sleep on the executor's clock, telling ``waiting`` first."""
        self.queries.pause(seconds, why)

    # ----- sending -----

    def _check_fence(self, intent: Intent) -> None:
        # Checked right before the request is built: a node that is not the leader, or a
        # leader past its send window, must not change anything on the shared account.
        if self._fence is not None and not self._fence():
            cid = intent.client_order_id
            logger.warning("order.not_leader cid=%s: not sent", cid)
            raise NotLeaderError(f"order {cid} not sent: this node is not the cluster leader")

    def _send(self, intent: Intent) -> Intent:
        cid = intent.client_order_id
        self._check_fence(intent)
        intent = self.journal.orders.mark_sent(cid, now_ms=self.clock.now_ms())
        self.crash.hit("after_journal_before_send")
        logger.info("order.sent cid=%s attempt=%s", cid, intent.attempts)
        try:
            order = self.exchange.create_order(intent.to_request())
        except ClockNotSyncedError as e:
            # Refused locally before sending: the exchange clock offset is not trusted.
            intent = self.book.mark(intent, IntentState.PENDING, f"not sent: {e}")
            self.queries.remeasure_clock()
            return intent
        except ExchangeError as e:
            return self._after_send_error(intent, e)
        self.crash.hit("after_reply_before_journal")
        telemetry.order_answered(
            purpose=intent.purpose.value, seconds=(self.clock.now_ms() - intent.created_ms) / 1000
        )
        return self.book.adopt(intent, order)

    def _after_send_error(self, intent: Intent, e: ExchangeError) -> Intent:
        cid = intent.client_order_id
        if isinstance(e, DuplicateClientOrderIdError):
            # -4116: an open order carries this id, i.e. an earlier send went through.
            return self.book.mark(intent, IntentState.UNKNOWN, f"duplicate id: order exists ({e})")
        if isinstance(e, ExchangeAuthError):
            self.book.mark(intent, IntentState.REJECTED, f"credentials refused: {e}")
            raise e
        if isinstance(e, InvalidOrderError):
            logger.warning("order.rejected cid=%s code=%s error=%s", cid, e.code, e)
            text = f"{WOULD_TRIGGER}: {e}" if e.code == WOULD_TRIGGER_CODE else str(e)
            return self.book.mark(intent, IntentState.REJECTED, text)
        if isinstance(e, RateLimitedError):
            return self._rate_limited(intent, e)
        if isinstance(e, ClockSkewError):
            # -1021 is checked before execution: re-measure, then the same id again.
            intent = self.book.mark(intent, IntentState.PENDING, f"clock skew: {e}")
            self.queries.remeasure_clock()
            return intent
        logger.warning("order.outcome_unknown cid=%s error=%s", cid, e)
        return self.book.mark(intent, IntentState.UNKNOWN, str(e))

    def _rate_limited(self, intent: Intent, e: RateLimitedError) -> Intent:
        # 429/-1003/418 are refusals: nothing executed. Wait and re-send the same id.
        wait = e.retry_after_s if e.retry_after_s is not None else self.policy.max_backoff_s
        logger.warning("order.rate_limited cid=%s wait_s=%s", intent.client_order_id, wait)
        intent = self.book.mark(intent, IntentState.PENDING, f"rate limited: {e}")
        if wait > self.policy.max_rate_limit_wait_s:
            return self.book.abandon(intent, f"rate limited for {wait:.0f}s")
        self.pause(wait, "rate_limited")
        return intent

    def _may_resend(self, intent: Intent) -> bool:
        if intent.attempts >= self.policy.max_sends:
            return False
        if intent.purpose is Purpose.ENTRY:
            age = self.clock.now_ms() - intent.created_ms
            return age <= self.policy.entry_resend_window_ms
        return True

    # ----- resolving an unknown outcome -----

    def _resolve(self, intent: Intent, *, allow_resend: bool) -> Intent:
        found = self.queries.lookup(intent, confirm_absent=True)
        if found.order is not None:
            logger.info(
                "order.resolved cid=%s found=%s", intent.client_order_id, found.order.status
            )
            return self.book.adopt(intent, found.order)
        if not found.absent:
            logger.error(
                "order.unresolved cid=%s: no answer after %s queries; outcome stays unknown",
                intent.client_order_id,
                self.policy.query_attempts,
            )
            if intent.state is not IntentState.UNKNOWN:
                return self.book.mark(intent, IntentState.UNKNOWN, "no answer to the query")
            return intent
        if intent.purpose is Purpose.ENTRY:
            doubted = self._doubt_absence(intent)
            if doubted is not None:
                return doubted
        if allow_resend and self._may_resend(intent):
            logger.warning("order.absent_resend cid=%s", intent.client_order_id)
            return self.book.mark(intent, IntentState.PENDING, "confirmed absent; re-sending")
        return self.book.abandon(intent, "confirmed absent on the exchange")

    def _doubt_absence(self, intent: Intent) -> Intent | None:
        """An entry said to be absent, checked against the position: None when the
        absence is believed, else the intent found, left UNKNOWN or abandoned."""
        doubt = self.queries.doubt_absence(
            intent,
            expected=lambda: self.journal.account.expected_positions().get(intent.symbol, ZERO),
        )
        if doubt is BELIEVED:
            return None
        if doubt.order is not None:
            return self.book.adopt(intent, doubt.order)
        if doubt.give_up is not None:
            return self.book.abandon(intent, doubt.give_up)
        if intent.state is IntentState.UNKNOWN and intent.last_error == _DOUBTED:
            return intent
        return self.book.mark(intent, IntentState.UNKNOWN, _DOUBTED)

    def _await_market_fill(self, intent: Intent) -> Intent:
        """A market order acknowledged without its fill (ACK response): ask until final.
        A poll for a state (the fill), not a retry of an error: stays a loop."""
        if intent.type is not OrderType.MARKET:
            return intent
        delay = 0.1
        for _ in range(self.policy.fill_polls):
            if intent.state is not IntentState.ACKED:
                return intent
            self.pause(delay, "fill_poll")
            delay = min(delay * 2, self.policy.max_backoff_s)
            intent = self.refresh(intent)
        if intent.state is IntentState.ACKED:
            logger.warning("order.fill_pending cid=%s", intent.client_order_id)
        return intent
