"""The journal's side of one intent: its deterministic client id, the write-ahead row, and
each state it moves to (adopted from the exchange's reply, or marked by the executor).

A leaf of the order path: it writes the journal and logs the change, nothing else.
"""

from __future__ import annotations

import dataclasses
import logging

from trendbotd.core.client_ids import make_client_id
from trendbotd.core.clock import Clock
from trendbotd.core.domain import Order
from trendbotd.core.reconcile import update_from_order
from trendbotd.core.records import Intent, IntentSpec, IntentState, IntentUpdate
from trendbotd.journal.store import Journal

logger = logging.getLogger(__name__)


class IntentBook:
    def __init__(self, *, journal: Journal, clock: Clock, instance: str) -> None:
        self.journal = journal
        self.clock = clock
        self.instance = instance

    def client_id(self, spec: IntentSpec) -> str:
        return make_client_id(instance=self.instance, symbol=spec.symbol,
                              candle_time_ms=spec.candle_time_ms, seq=spec.seq,
                              purpose=spec.purpose)  # fmt: skip

    def add(self, spec: IntentSpec, state: IntentState, *, last_error: str | None = None) -> Intent:
        """Journal a new intent (committed before anything is sent)."""
        now = self.clock.now_ms()
        # every field of the spec is a field of the intent; the rest is the journal's
        new = Intent(
            **dataclasses.asdict(spec),
            client_order_id=self.client_id(spec),
            state=state,
            created_ms=now,
            updated_ms=now,
            last_error=last_error,
        )
        intent, _ = self.journal.orders.add_intent(new)
        return intent

    def record_unsent(self, spec: IntentSpec, *, reason: str) -> Intent:
        """Journal a decision as ABANDONED without sending it, so the same decision made
        again (a restart) finds it final and sends nothing either."""
        cid = self.client_id(spec)
        existing = self.journal.orders.get_intent(cid)
        if existing is not None:
            return existing
        intent = self.add(spec, IntentState.ABANDONED, last_error=reason)
        logger.warning("order.abandoned cid=%s reason=%s", cid, reason)
        return intent

    def adopt(self, intent: Intent, order: Order) -> Intent:
        """The exchange's view of the order becomes the intent's state."""
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

    def mark(self, intent: Intent, state: IntentState, error: str) -> Intent:
        return self.journal.orders.update_intent(
            intent.client_order_id,
            IntentUpdate(state=state, last_error=error),
            now_ms=self.clock.now_ms(),
        )

    def abandon(self, intent: Intent, reason: str) -> Intent:
        logger.warning("order.abandoned cid=%s reason=%s", intent.client_order_id, reason)
        return self.mark(intent, IntentState.ABANDONED, reason)
