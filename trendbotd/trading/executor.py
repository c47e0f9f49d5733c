"""The order executor: one intent at a time, write-ahead, never two orders for one intent.

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from trendbotd.config import Config
from trendbotd.core import telemetry
from trendbotd.core.absence import (
    DOUBT_SETTLE_INTERVALS,
    AbsenceFacts,
    AbsentVerdict,
    judge_absent,
    unexplained,
)
from trendbotd.core.client_ids import make_client_id
from trendbotd.core.clock import Clock
from trendbotd.core.domain import ZERO, Order, OrderStatus, OrderType
from trendbotd.core.ports import Exchange
from trendbotd.core.reconcile import update_from_order
from trendbotd.core.records import (
    WOULD_TRIGGER,
    Intent,
    IntentSpec,
    IntentState,
    IntentUpdate,
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

logger = logging.getLogger(__name__)

T = TypeVar("T")
WOULD_TRIGGER_CODE = -2021
_MAX_SETTLE_WAITS = 3  # a clock that does not move must not make us wait forever
_DOUBTED = "absent in queries, but the position shows more than the journal expects"


class EntryBlockedError(TrendbotError):
    """An entry was submitted while the journal's mode forbids entries (a caller bug)."""

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """Every retry is bounded; no field has a silent default."""

    query_attempts: int  # queries by client id before an outcome stays UNKNOWN
    query_backoff_s: float  # first pause between failed queries; doubles up to max_backoff_s
    max_backoff_s: float
    absent_settle_ms: int  # "absent" counts only this long after the request left
    max_sends: int  # requests per intent (same client id), counted across restarts
    entry_resend_window_ms: int  # an absent entry is re-sent only this soon after the decision
    fill_polls: int  # queries for the fill of an acknowledged market order
    max_rate_limit_wait_s: float  # a longer Retry-After gives up on the intent

    @classmethod
    def from_config(cls, config: Config, *, recv_window_ms: int | None = None) -> ExecutorPolicy:
        """``recv_window_ms``: the window the adapter really signs with, if it differs from
        the config's (paper mode scales it): a request can be accepted until it expires,
        so "absent" is believed only after it."""
        window = config.exchange.recv_window_ms if recv_window_ms is None else recv_window_ms
        # The adapter already retries each read (bounded); these are rounds on top of it.
        return cls(
            query_attempts=3,
            query_backoff_s=1.0,
            max_backoff_s=8.0,
            absent_settle_ms=window + 1000,
            max_sends=3,
            entry_resend_window_ms=60_000,
            fill_polls=5,
            max_rate_limit_wait_s=30.0,
        )


@dataclass(frozen=True, slots=True)
class _Lookup:
    order: Order | None
    absent: bool  # the exchange said "no such order" (and, if asked, the request settled)


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
        self._waiting = waiting
        self._fence = fence

    # ----- public -----

    def client_id(self, spec: IntentSpec) -> str:
        return make_client_id(
            instance=self.instance,
            symbol=spec.symbol,
            candle_time_ms=spec.candle_time_ms,
            seq=spec.seq,
            purpose=spec.purpose,
        )

    def submit(self, spec: IntentSpec) -> Intent:
        """Journal the intent, then send it. An intent already journalled under the same
        id is driven forward (queried, never blindly re-sent) or returned if final."""
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
        intent, _ = self.journal.orders.add_intent(self._new_intent(spec, IntentState.PENDING))
        logger.info("order.journalled %s", intent.describe())
        return self.drive(intent, allow_resend=True)

    def require_entries_allowed(self, cid: str) -> None:
        mode = self.journal.controls.mode()
        if mode.mode is not TradingMode.NORMAL:
            raise EntryBlockedError(f"entry {cid} refused: mode is {mode.mode} ({mode.reason})")

    def record_unsent(self, spec: IntentSpec, *, reason: str) -> Intent:
        """Journal a decision as ABANDONED without sending it, so the same decision made
        again (a restart) finds it final and sends nothing either."""
        cid = self.client_id(spec)
        existing = self.journal.orders.get_intent(cid)
        if existing is not None:
            return existing
        new = self._new_intent(spec, IntentState.ABANDONED, last_error=reason)
        intent, _ = self.journal.orders.add_intent(new)
        logger.warning("order.abandoned cid=%s reason=%s", cid, reason)
        return intent

    def drive(self, intent: Intent, *, allow_resend: bool) -> Intent:
        """Move a non-final intent as far as it can go now.

        ``allow_resend=False`` is the startup resolver: every intent is queried by id and
        one the exchange confirms absent is abandoned, not re-sent: a decision made before
        a crash is stale and the engine decides afresh.
        """
        while True:
            state = intent.state
            if state.is_final:
                return intent
            if state is IntentState.ACKED:
                return self._await_market_fill(intent)
            if state is IntentState.PENDING and allow_resend:
                if not self._may_resend(intent):
                    return self._abandon(intent, intent.last_error or "send attempts used up")
                intent = self._send(intent)
                continue
            intent = self._resolve(intent, allow_resend=allow_resend)
            if intent.state is IntentState.UNKNOWN:
                return intent  # no answer: the next sync asks again

    def refresh(self, intent: Intent) -> Intent:
        """Ask the exchange about one ACKED intent (a resting entry, a live stop)."""
        found = self._lookup(intent, confirm_absent=False)
        if found.order is None:
            return intent
        return self._adopt(intent, found.order)

    def refresh_from_listing(self, intent: Intent, listed: Order | None) -> Intent:
        """One ACKED intent against this sync's open-orders listing: still listed and
        unchanged -> nothing to ask or write; listed with news (a partial fill) -> adopted;
        not listed (filled, triggered, canceled) -> asked by client id."""
        if listed is None:
            return self.refresh(intent)
        if listed.status is OrderStatus.OPEN and listed.filled == intent.filled:
            return intent
        return self._adopt(intent, listed)

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
            order = self._lookup(intent, confirm_absent=False).order
        if order is None:
            logger.error("order.cancel_unresolved cid=%s", intent.client_order_id)
            return intent
        return self._adopt(intent, order)

    def read_with_retry(self, what: str, read: Callable[[], T]) -> T:
        """A read-only exchange call with bounded retries; the last error propagates."""
        delay = self.policy.query_backoff_s
        for attempt in range(1, self.policy.query_attempts + 1):
            try:
                return read()
            except ExchangeAuthError:
                raise
            except ExchangeError as e:
                if attempt == self.policy.query_attempts:
                    raise
                logger.warning("exchange.read_failed what=%s attempt=%s error=%s", what, attempt, e)
                if isinstance(e, ClockSkewError):
                    self._remeasure_clock()
                    continue
                wait = delay
                if isinstance(e, RateLimitedError) and e.retry_after_s is not None:
                    # the exchange (or the weight budget) said how long: sooner is futile
                    wait = min(max(delay, e.retry_after_s), self.policy.max_rate_limit_wait_s)
                self.pause(wait, f"{what}_retry")
                delay = min(delay * 2, self.policy.max_backoff_s)
        raise AssertionError("unreachable")  # pragma: no cover

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
            intent = self._mark(intent, IntentState.PENDING, f"not sent: {e}")
            self._remeasure_clock()
            return intent
        except ExchangeError as e:
            return self._after_send_error(intent, e)
        self.crash.hit("after_reply_before_journal")
        telemetry.order_answered(
            purpose=intent.purpose.value, seconds=(self.clock.now_ms() - intent.created_ms) / 1000
        )
        return self._adopt(intent, order)

    def _after_send_error(self, intent: Intent, e: ExchangeError) -> Intent:
        cid = intent.client_order_id
        if isinstance(e, DuplicateClientOrderIdError):
            # -4116: an open order carries this id, i.e. an earlier send went through.
            return self._mark(intent, IntentState.UNKNOWN, f"duplicate id: order exists ({e})")
        if isinstance(e, ExchangeAuthError):
            self._mark(intent, IntentState.REJECTED, f"credentials refused: {e}")
            raise e
        if isinstance(e, InvalidOrderError):
            logger.warning("order.rejected cid=%s code=%s error=%s", cid, e.code, e)
            text = f"{WOULD_TRIGGER}: {e}" if e.code == WOULD_TRIGGER_CODE else str(e)
            return self._mark(intent, IntentState.REJECTED, text)
        if isinstance(e, RateLimitedError):
            return self._rate_limited(intent, e)
        if isinstance(e, ClockSkewError):
            # -1021 is checked before execution: re-measure, then the same id again.
            intent = self._mark(intent, IntentState.PENDING, f"clock skew: {e}")
            self._remeasure_clock()
            return intent
        logger.warning("order.outcome_unknown cid=%s error=%s", cid, e)
        return self._mark(intent, IntentState.UNKNOWN, str(e))

    def _rate_limited(self, intent: Intent, e: RateLimitedError) -> Intent:
        # 429/-1003/418 are refusals: nothing executed. Wait and re-send the same id.
        wait = e.retry_after_s if e.retry_after_s is not None else self.policy.max_backoff_s
        logger.warning("order.rate_limited cid=%s wait_s=%s", intent.client_order_id, wait)
        intent = self._mark(intent, IntentState.PENDING, f"rate limited: {e}")
        if wait > self.policy.max_rate_limit_wait_s:
            return self._abandon(intent, f"rate limited for {wait:.0f}s")
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
        found = self._lookup(intent, confirm_absent=True)
        if found.order is not None:
            logger.info(
                "order.resolved cid=%s found=%s", intent.client_order_id, found.order.status
            )
            return self._adopt(intent, found.order)
        if not found.absent:
            logger.error(
                "order.unresolved cid=%s: no answer after %s queries; outcome stays unknown",
                intent.client_order_id,
                self.policy.query_attempts,
            )
            if intent.state is not IntentState.UNKNOWN:
                return self._mark(intent, IntentState.UNKNOWN, "no answer to the query")
            return intent
        if intent.purpose is Purpose.ENTRY:
            doubted = self._doubt_absence(intent)
            if doubted is not None:
                return doubted
        if allow_resend and self._may_resend(intent):
            logger.warning("order.absent_resend cid=%s", intent.client_order_id)
            return self._mark(intent, IntentState.PENDING, "confirmed absent; re-sending")
        return self._abandon(intent, "confirmed absent on the exchange")

    def _doubt_absence(self, intent: Intent) -> Intent | None:
        """An entry said to be absent, checked against the position (``absence``): None
        when the absence is believed, else the intent found, left UNKNOWN or abandoned."""
        cid = intent.client_order_id
        for _ in range(DOUBT_SETTLE_INTERVALS + 1):
            facts = AbsenceFacts(
                side=intent.side,
                expected=self.journal.account.expected_positions().get(intent.symbol, ZERO),
                actual=self._position_or_none(intent.symbol),
                sent_ms=intent.sent_ms if intent.sent_ms is not None else intent.created_ms,
                now_ms=self.clock.now_ms(),
                settle_ms=self.policy.absent_settle_ms,
            )
            verdict = judge_absent(facts)
            if verdict is AbsentVerdict.BELIEVE:
                return None
            why = (
                "position unreadable"
                if facts.actual is None
                else f"position {facts.actual} exceeds the expected {facts.expected} "
                f"by {unexplained(facts)}"
            )
            if verdict is AbsentVerdict.GIVE_UP:
                logger.error("order.absent_unexplained cid=%s %s: abandoned, not re-sent", cid, why)
                return self._abandon(intent, f"absent in queries but {why}; not re-sent")
            if verdict is AbsentVerdict.UNKNOWN:
                break
            logger.warning("order.absent_doubted cid=%s %s: asking again", cid, why)
            self.pause(self.policy.absent_settle_ms / 1000, "absent_doubt")
            found = self._lookup(intent, confirm_absent=True)
            if found.order is not None:
                logger.info("order.resolved cid=%s found=%s late", cid, found.order.status)
                return self._adopt(intent, found.order)
            if not found.absent:
                break
        logger.error("order.absent_doubted cid=%s: outcome stays unknown, asked again", cid)
        if intent.state is IntentState.UNKNOWN and intent.last_error == _DOUBTED:
            return intent
        return self._mark(intent, IntentState.UNKNOWN, _DOUBTED)

    def _position_or_none(self, symbol: str) -> Decimal | None:
        try:
            found = self.exchange.fetch_positions([symbol])
        except ExchangeAuthError:
            raise
        except ExchangeError as e:
            logger.warning("order.position_unreadable symbol=%s error=%s", symbol, e)
            return None
        return sum((p.amount for p in found if p.symbol == symbol), ZERO)

    def _lookup(self, intent: Intent, *, confirm_absent: bool) -> _Lookup:
        """Query by client id with bounded retries. Only the port's ``None`` (the exchange
        itself said "no such order") counts as absent, and with ``confirm_absent`` only once
        the last request is older than the settle time."""
        delay = self.policy.query_backoff_s
        failures = settles = 0
        while failures < self.policy.query_attempts and settles <= _MAX_SETTLE_WAITS:
            try:
                order = self.exchange.fetch_order_by_client_id(
                    intent.symbol, intent.client_order_id, conditional=intent.conditional
                )
            except ExchangeAuthError:
                raise
            except ClockSkewError as e:
                failures += 1
                logger.warning("order.query_skew cid=%s error=%s", intent.client_order_id, e)
                self._remeasure_clock()
                continue
            except ExchangeError as e:
                failures += 1
                logger.warning("order.query_failed cid=%s error=%s", intent.client_order_id, e)
                wait = delay
                if isinstance(e, RateLimitedError) and e.retry_after_s is not None:
                    wait = min(e.retry_after_s, self.policy.max_rate_limit_wait_s)
                self.pause(wait, "query_retry")
                delay = min(delay * 2, self.policy.max_backoff_s)
                continue
            if order is not None:
                return _Lookup(order, absent=False)
            settle_left = self._settle_left_ms(intent)
            if not confirm_absent or settle_left <= 0:
                return _Lookup(None, absent=True)
            # Too early to believe "absent": a delayed copy could still arrive. Wait out
            # the exchange's recvWindow, then ask again (the clock has moved past it).
            settles += 1
            self.pause(settle_left / 1000, "absent_settle")
        return _Lookup(None, absent=False)

    def _settle_left_ms(self, intent: Intent) -> int:
        if intent.sent_ms is None:
            return 0
        return intent.sent_ms + self.policy.absent_settle_ms - self.clock.now_ms()

    def _await_market_fill(self, intent: Intent) -> Intent:
        """A market order acknowledged without its fill (ACK response): ask until final."""
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

    # ----- journal helpers -----

    def _new_intent(
        self, spec: IntentSpec, state: IntentState, *, last_error: str | None = None
    ) -> Intent:
        now = self.clock.now_ms()
        return Intent(
            client_order_id=self.client_id(spec),
            symbol=spec.symbol,
            side=spec.side,
            type=spec.type,
            amount=spec.amount,
            purpose=spec.purpose,
            candle_time_ms=spec.candle_time_ms,
            seq=spec.seq,
            state=state,
            created_ms=now,
            updated_ms=now,
            price=spec.price,
            stop_price=spec.stop_price,
            reduce_only=spec.reduce_only,
            protective_stop=spec.protective_stop,
            parent_client_order_id=spec.parent_client_order_id,
            last_error=last_error,
        )

    def _adopt(self, intent: Intent, order: Order) -> Intent:
        update = update_from_order(order)
        adopted = self.journal.orders.update_intent(
            intent.client_order_id, update, now_ms=self.clock.now_ms()
        )
        if adopted.state != intent.state or adopted.filled != intent.filled:
            logger.info(
                "order.%s cid=%s filled=%s avg=%s",
                adopted.state.value.lower(),
                adopted.client_order_id,
                adopted.filled,
                adopted.average_price,
            )
        return adopted

    def _mark(self, intent: Intent, state: IntentState, error: str) -> Intent:
        return self.journal.orders.update_intent(
            intent.client_order_id,
            IntentUpdate(state=state, last_error=error),
            now_ms=self.clock.now_ms(),
        )

    def _abandon(self, intent: Intent, reason: str) -> Intent:
        logger.warning("order.abandoned cid=%s reason=%s", intent.client_order_id, reason)
        return self._mark(intent, IntentState.ABANDONED, reason)

    def _remeasure_clock(self) -> None:
        try:
            offset = self.exchange.measure_clock()
            logger.info("clock.remeasured offset_ms=%s", offset.offset_ms)
        except ExchangeError as e:
            logger.warning("clock.remeasure_failed error=%s", e)
            self.pause(self.policy.query_backoff_s, "clock_retry")

    def pause(self, seconds: float, why: str) -> None:
        """Sleep on the executor's clock, telling ``waiting`` first."""
        if seconds <= 0:
            return
        logger.debug("order.wait seconds=%.2f why=%s", seconds, why)
        if self._waiting is not None:
            self._waiting(seconds)
        self.clock.sleep(seconds)
