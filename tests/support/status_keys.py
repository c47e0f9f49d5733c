"""The key sets `trendbotd status --json` promises (schema 1), pinned once for the unit test
of the journal's part and the daemon test of the whole document."""

from __future__ import annotations

HOLDER_KEYS = {
    "pid",
    "description",
    "rss_bytes",
    "cpu_s",
    "threads",
    "uptime_s",
    "resources_unknown",
}
JOURNAL_KEYS = {
    "journal",
    "mode",
    "mode_reason",
    "mode_since_ms",
    "mode_resolved_ms",
    "last_tick_ms",
    "last_sync_ms",
    "clock",
    "daily_start_equity",
    "positions",
    "expected_positions",
    "open_orders",
    "recent_guard_blocks",
    "flatten",
}
POSITION_KEYS = {
    "symbol",
    "amount",
    "entry_price",
    "stop_price",
    "stop_client_order_id",
    "stop_covered_amount",
    "seen_at_ms",
}
ORDER_KEYS = {
    "client_order_id",
    "state",
    "purpose",
    "symbol",
    "side",
    "type",
    "amount",
    "filled",
    "stop_price",
    "created_ms",
    "last_error",
}
CLOCK_KEYS = {"offset_ms", "uncertainty_ms", "round_trip_ms", "measured_at_ms", "samples"}

# The whole document: the process's part, then the journal's.
TOP_KEYS = {"schema", "instance", "running", "lock", "holder"} | JOURNAL_KEYS
