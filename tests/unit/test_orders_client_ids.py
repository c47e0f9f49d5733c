from __future__ import annotations

import itertools

import pytest

from trendbotd.core.client_ids import (
    ALLOWED,
    MAX_LEN,
    instance_tag,
    is_ours,
    make_client_id,
    parse_client_id,
)
from trendbotd.core.records import Purpose

T0 = 1_700_000_000_000  # 2023-11-14


def cid(**kw: object) -> str:
    args: dict[str, object] = {
        "instance": "trendbotd",
        "symbol": "BTC/USDT:USDT",
        "candle_time_ms": T0,
        "seq": 0,
        "purpose": Purpose.ENTRY,
    }
    args.update(kw)
    return make_client_id(**args)  # type: ignore[arg-type]


def test_same_decision_same_id_after_restart() -> None:
    assert cid() == cid()
    assert cid(purpose=Purpose.STOP) == cid(purpose=Purpose.STOP)


@pytest.mark.parametrize(
    ("instance", "symbol", "candle", "seq", "purpose"),
    [
        ("trendbotd", "BTC/USDT:USDT", T0, 0, Purpose.ENTRY),
        ("a" * 32, "1000SHIBABC/USDT:USDT", 4_102_444_800_000, 99_999, Purpose.FLATTEN),
        ("x", "ETH/USDC:USDC", 0, 7, Purpose.STOP),
        ("prod-2.eu_west", "DOGE/USDT:USDT", T0 + 1, 12, Purpose.EXIT),
    ],
)
def test_ids_follow_binance_rule(
    instance: str, symbol: str, candle: int, seq: int, purpose: Purpose
) -> None:
    value = make_client_id(
        instance=instance, symbol=symbol, candle_time_ms=candle, seq=seq, purpose=purpose
    )
    assert len(value) <= MAX_LEN
    assert ALLOWED.match(value), value
    parsed = parse_client_id(value)
    assert parsed is not None
    assert parsed.purpose is purpose
    assert parsed.seq == seq
    assert parsed.candle_time_s == candle // 1000
    assert parsed.instance_tag == instance_tag(instance)


def test_readable_layout() -> None:
    value = cid()
    assert value.startswith(f"tb-{instance_tag('trendbotd')}-BTC-")
    assert "-e0-" in value


def test_every_input_changes_the_id() -> None:
    base = cid()
    variants = [
        cid(instance="other"),
        cid(symbol="BTC/USDC:USDC"),  # same base asset, readable parts identical but hash
        cid(candle_time_ms=T0 + 1),  # same second in base 36, hash differs
        cid(seq=1),
        cid(purpose=Purpose.STOP),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_no_collisions_over_a_realistic_grid() -> None:
    symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BTC/USDC:USDC"]
    seen = set()
    count = 0
    for inst, sym, hour, seq, purpose in itertools.product(
        ["a", "b"], symbols, range(0, 24 * 30), range(3), list(Purpose)
    ):
        seen.add(
            make_client_id(
                instance=inst,
                symbol=sym,
                candle_time_ms=T0 + hour * 3_600_000,
                seq=seq,
                purpose=purpose,
            )
        )
        count += 1
    assert len(seen) == count


def test_foreign_ids_are_not_ours() -> None:
    assert parse_client_id("x-TKREHG5Kabc123") is None
    assert parse_client_id("") is None
    assert is_ours(cid(), instance="trendbotd")
    assert not is_ours(cid(), instance="other")
    assert not is_ours("web_8f3a9e", instance="trendbotd")


@pytest.mark.parametrize(
    ("field", "value"), [("seq", -1), ("seq", 100_000), ("candle_time_ms", -5)]
)
def test_out_of_range_inputs_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=r"range|negative"):
        cid(**{field: value})
