"""Counters the order path reports as it goes: one call per event, no dependency.

The metrics adapter (trendbotd.adapters.metrics) installs a sink when ``[metrics] listen``
is set; until then every call goes to ``NullSink`` and costs a function call. State the
daemon already journals (mode, positions, stops, unfinished intents, clock, orders) is
not reported here: the collector reads it from the journal at scrape time.

A sink must never raise into the order path and never block: prometheus_client's
counters are an in-memory add under a lock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class TelemetrySink(Protocol):
    def exchange_request(self) -> None: ...
    def exchange_answer(self, *, used_weight: int | None) -> None: ...
    def exchange_error(self, *, code: str) -> None: ...
    def order_answered(self, *, purpose: str, seconds: float) -> None: ...
    def equity(self, total: Decimal) -> None: ...
    def alert_outbox_depth(self, depth: int) -> None: ...
    def alert_failed(self, *, channel: str) -> None: ...


class NullSink:
    """Metrics off: every report is dropped."""

    def exchange_request(self) -> None:
        return None

    def exchange_answer(self, *, used_weight: int | None) -> None:
        return None

    def exchange_error(self, *, code: str) -> None:
        return None

    def order_answered(self, *, purpose: str, seconds: float) -> None:
        return None

    def equity(self, total: Decimal) -> None:
        return None

    def alert_outbox_depth(self, depth: int) -> None:
        return None

    def alert_failed(self, *, channel: str) -> None:
        return None


_sink: TelemetrySink = NullSink()


def install(sink: TelemetrySink) -> TelemetrySink:
    """Route every report to ``sink`` from now on; returns the previous sink (tests
    restore it)."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def error_code(*, code: int | None, http_status: int | None) -> str:
    """The ``code`` label of an exchange error: the exchange's own code ("-2019"), else
    the HTTP status ("http_503"), else "network" (no answer: timeout, reset, DNS)."""
    if code is not None:
        return str(code)
    if http_status is not None:
        return f"http_{http_status}"
    return "network"


# ----- the hooks: one call site each -----


def exchange_request() -> None:
    """A request is about to go to the exchange (ccxt_client ``fetch``)."""
    _sink.exchange_request()


def exchange_answer(*, used_weight: int | None) -> None:
    """The exchange answered; ``used_weight``: its X-MBX-USED-WEIGHT-1M, if it sent one."""
    _sink.exchange_answer(used_weight=used_weight)


def exchange_error(*, code: int | None, http_status: int | None) -> None:
    """A call to the exchange failed (every failure passes ccxt_calls ``_failed``)."""
    _sink.exchange_error(code=error_code(code=code, http_status=http_status))


def order_answered(*, purpose: str, seconds: float) -> None:
    """The exchange accepted an order ``seconds`` after its intent was journalled."""
    _sink.order_answered(purpose=purpose, seconds=seconds)


def equity(total: Decimal | None) -> None:
    """The account's total balance as the last sync read it (None: the read failed, the
    previous value stands)."""
    if total is not None:
        _sink.equity(total)


def alert_outbox_depth(depth: int) -> None:
    """Alerts waiting in the outbox (for the alert sender to call after each change)."""
    _sink.alert_outbox_depth(depth)


def alert_failed(*, channel: str) -> None:
    """One delivery attempt of an alert to ``channel`` failed (for the alert sender)."""
    _sink.alert_failed(channel=channel)
