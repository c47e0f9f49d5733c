"""An entry whose outcome stays unknown: the send's reply is lost and every query of it
fails, so the executor can neither confirm nor deny it."""

from __future__ import annotations

from typing import Literal

from orders_fakes import ORDERS_POLICY, FakeExchange
from orders_fakes import entry_spec as entry

from trendbotd.core.records import Intent, IntentState
from trendbotd.errors import OutcomeUnknownError, TransientExchangeError
from trendbotd.trading.executor import OrderExecutor


def unknown_entry(
    executor: OrderExecutor, fake: FakeExchange, *, reset: Literal["before", "after"]
) -> Intent:
    """Submits an entry whose connection resets ``reset`` the exchange took it, with
    every query answered 502; it is left UNKNOWN."""
    fake.fault("create_order", OutcomeUnknownError("reset"), when=reset)
    fake.fault("fetch_order", TransientExchangeError("502"), times=ORDERS_POLICY.query_attempts)
    done = executor.submit(entry())
    assert done.state is IntentState.UNKNOWN
    return done
