"""Clock offset estimation (median of round-trip midpoints) and the order clock guard."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trendbotd.core.domain import ClockOffset
from trendbotd.core.timesync import ClockGuard, TimeSample, estimate_offset, signing_offset_ms
from trendbotd.errors import ClockNotSyncedError


def sample(send: int, server: int, recv: int) -> TimeSample:
    return TimeSample(local_send_ms=send, server_ms=server, local_recv_ms=recv)


def test_offset_is_server_minus_midpoint_and_uncertainty_half_the_round_trip() -> None:
    est = estimate_offset([sample(1000, 1550, 1100)], measured_at_ms=1100)
    assert est == ClockOffset(offset_ms=500, uncertainty_ms=50, measured_at_ms=1100, samples=1)


def test_median_ignores_an_asymmetric_outlier() -> None:
    samples = [
        sample(0, 20_010, 20),  # offset 20000, rtt 20
        sample(100, 20_112, 122),  # 20001
        sample(200, 20_209, 220),  # 19999
        sample(300, 21_500, 900),  # slow, one-sided reply: offset 20900
        sample(1000, 21_010, 1022),  # 19999
    ]
    est = estimate_offset(samples, measured_at_ms=1022)
    assert est.offset_ms == 20_000
    assert est.uncertainty_ms == 10  # from the chosen (median) sample only
    assert est.samples == 5


def test_even_count_averages_the_middle_two_and_keeps_the_larger_uncertainty() -> None:
    # eight samples: the fastest quarter is two, offsets 95 and 95, half round trips 5 and 15
    fast = [sample(0, 100, 10), sample(0, 110, 30)]
    slow = [sample(0, 500 + i, 100 + i) for i in range(6)]
    est = estimate_offset([*slow[:3], *fast, *slow[3:]], measured_at_ms=0)
    assert (est.offset_ms, est.uncertainty_ms, est.round_trip_ms) == (95, 15, 30)
    assert est.samples == 8


def test_offset_comes_from_the_fastest_round_trips_not_the_median_of_all() -> None:
    # A server that stamps its time and then sits on the reply (or a slow inbound path)
    # shifts every slow sample's midpoint; only the fast one shows the true offset 0.
    slow = [sample(t, t + 1500, t + 1500) for t in (0, 2000, 4000, 6000)]  # offset +750
    fast = sample(8000, 8004, 8008)  # offset 0, round trip 8
    est = estimate_offset([*slow[:2], fast, *slow[2:]], measured_at_ms=8008)
    assert (est.offset_ms, est.uncertainty_ms, est.round_trip_ms) == (0, 4, 8)
    assert GUARD.check(est, now_ms=8008).ok


def test_the_fastest_quarter_is_a_median_of_its_own() -> None:
    # twelve samples: the fastest three vote; the middle one of them wins
    fast = [sample(0, 30, 20), sample(0, 12, 22), sample(0, -40, 21)]  # offsets 20, 1, -50
    slow = [sample(0, 900, 1000)] * 9
    est = estimate_offset([*slow, *fast], measured_at_ms=0)
    assert (est.offset_ms, est.uncertainty_ms, est.round_trip_ms) == (1, 11, 22)


def test_half_millisecond_midpoints_round_and_uncertainty_rounds_up() -> None:
    est = estimate_offset([sample(0, 10, 3)], measured_at_ms=3)  # midpoint 1.5 -> 8.5
    assert est.offset_ms in (8, 9)
    assert est.uncertainty_ms == 2  # 1.5 rounded up: never understate it


def test_negative_offset_when_the_exchange_is_behind() -> None:
    est = estimate_offset([sample(50_000, 30_004, 50_008)] * 3, measured_at_ms=50_008)
    assert est.offset_ms == -20_000


def test_samples_where_the_local_clock_ran_backwards_are_ignored() -> None:
    est = estimate_offset([sample(100, 5000, 90), sample(100, 700, 110)], measured_at_ms=110)
    assert (est.offset_ms, est.samples) == (595, 1)
    with pytest.raises(ValueError, match="no usable clock sample"):
        estimate_offset([sample(100, 5000, 90)], measured_at_ms=0)
    with pytest.raises(ValueError, match="no usable clock sample"):
        estimate_offset([], measured_at_ms=0)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**12),
            st.integers(-(10**7), 10**7),
            st.integers(0, 5000),
        ),
        min_size=1,
        max_size=9,
    )
)
def test_estimate_lies_within_the_sample_offsets(raw: list[tuple[int, int, int]]) -> None:
    samples = [sample(send, send + skew, send + rtt) for send, skew, rtt in raw]
    est = estimate_offset(samples, measured_at_ms=0)
    offsets = sorted(float(s.offset) for s in samples)
    assert offsets[0] - 0.5 <= est.offset_ms <= offsets[-1] + 0.5
    assert 0 <= est.uncertainty_ms <= max(rtt for _, _, rtt in raw) // 2 + 1


# ----- guard -----

GUARD = ClockGuard(max_offset_ms=500, max_age_ms=600_000)


def offset(value: int, uncertainty: int = 5, at: int = 1_000_000) -> ClockOffset:
    return ClockOffset(offset_ms=value, uncertainty_ms=uncertainty, measured_at_ms=at, samples=5)


@pytest.mark.parametrize(
    ("measured", "now", "ok", "reason"),
    [
        (None, 1_000_000, False, "not measured"),
        (offset(0), 1_000_000, True, ""),
        (offset(500), 1_000_000, True, ""),
        (offset(-500), 1_000_000, True, ""),
        (offset(501), 1_000_000, False, "offset 501 ms exceeds"),
        (offset(-20_000), 1_000_000, False, "offset -20000 ms exceeds"),
        (offset(10, uncertainty=501), 1_000_000, False, "uncertainty 501 ms"),
        (offset(10, uncertainty=501), 1_000_000, False, "round trip 1002 ms too slow"),
        (offset(700, uncertainty=400), 1_000_000, False, "offset 700 ms exceeds"),
        (offset(901, uncertainty=400), 1_000_000, False, "time synchronisation"),
        (offset(10), 1_600_000, True, ""),
        (offset(10), 1_600_001, False, "older than"),
    ],
)
def test_guard_verdicts(measured: ClockOffset | None, now: int, ok: bool, reason: str) -> None:
    verdict = GUARD.check(measured, now_ms=now)
    assert verdict.ok is ok
    assert reason in verdict.reason
    if ok:
        assert GUARD.require(measured, now_ms=now) == measured
        assert verdict.reason == ""
    else:
        with pytest.raises(ClockNotSyncedError, match="orders refused"):
            GUARD.require(measured, now_ms=now)


def test_staleness() -> None:
    assert GUARD.is_stale(None, now_ms=0)
    assert not GUARD.is_stale(offset(0, at=0), now_ms=600_000)
    assert GUARD.is_stale(offset(0, at=0), now_ms=600_001)


def test_guard_rejects_meaningless_bounds() -> None:
    with pytest.raises(ValueError):
        ClockGuard(max_offset_ms=0, max_age_ms=1)
    with pytest.raises(ValueError):
        ClockGuard(max_offset_ms=1, max_age_ms=0)


def test_a_slow_round_trip_is_not_blamed_on_the_host_clock() -> None:
    # What a 1500 ms reply delay measured: the offset is as uncertain as it is large.
    slow = ClockOffset(
        offset_ms=750, uncertainty_ms=750, measured_at_ms=1_000_000, samples=5, round_trip_ms=1500
    )
    verdict = GUARD.check(slow, now_ms=1_000_000)
    assert not verdict.ok
    assert verdict.reason == (
        "round trip 1500 ms too slow to measure the clock within the bound of 500 ms "
        "(offset uncertainty 750 ms)"
    )
    with pytest.raises(ClockNotSyncedError, match=r"^orders refused: round trip 1500 ms too slow"):
        GUARD.require(slow, now_ms=1_000_000)


def test_an_offset_beyond_the_bound_within_its_uncertainty_names_the_round_trips() -> None:
    verdict = GUARD.check(offset(700, uncertainty=400), now_ms=1_000_000)
    assert verdict.reason == (
        "clock offset 700 ms exceeds the bound of 500 ms (uncertainty 400 ms from the round trips)"
    )
    far = GUARD.check(offset(-20_000, uncertainty=5), now_ms=1_000_000)
    assert far.reason == (
        "clock offset -20000 ms exceeds the bound of 500 ms (fix the host's time synchronisation)"
    )


@given(
    true_offset=st.integers(-(10**6), 10**6),
    trips=st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(0, 20_000), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=7,
    ),
)
def test_signed_timestamps_are_never_ahead_of_the_exchange(
    true_offset: int, trips: list[tuple[int, int, float]]
) -> None:
    # Each reply is stamped somewhere inside its round trip (a starved host: anywhere).
    # Binance refuses a timestamp 1 s or more ahead (-1021); signing at the estimate less
    # its uncertainty never is, while the bare estimate can be seconds ahead.
    samples = [
        sample(send, send + round(rtt * where) + true_offset, send + rtt)
        for send, rtt, where in trips
    ]
    est = estimate_offset(samples, measured_at_ms=0)
    signed = signing_offset_ms(est, recv_window_ms=60_000)
    assert signed <= true_offset + 1  # +1: the estimate's rounding to whole milliseconds
    assert true_offset - signed <= 2 * est.uncertainty_ms + 1  # costs at most a round trip
    assert true_offset - signed <= 30_000 + est.uncertainty_ms + 1


def test_signing_offset_is_capped_at_half_the_window() -> None:
    est = estimate_offset([sample(0, 50_000, 100_000)], measured_at_ms=0)  # 100 s round trip
    assert (est.offset_ms, est.uncertainty_ms) == (0, 50_000)
    assert signing_offset_ms(est, recv_window_ms=5000) == -2500
    assert signing_offset_ms(est, recv_window_ms=200_000) == -50_000
