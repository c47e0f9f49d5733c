"""The sim's account as a JSON-ready document, and back (pure: no files, no clock).

What the exchange side keeps across a restart: wallet and realised PnL, positions with
entry prices and leverage, hedge/multi-assets flags, plain orders (open and the bounded
closed history that lookups by client id and allOrders need), algo orders, fills, id
counters, pinned prices, how far matching got per symbol, and a CSV replay's time shift.
Candles are not stored: they follow from the seed or the CSV. Decimals are strings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, asdict, fields
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from trendbotd.sim.market import CsvCandles
from trendbotd.sim.orders import SimAlgoOrder, SimOrder
from trendbotd.sim.specs import SymbolSpec
from trendbotd.sim.state import Fill, IdCounters, PositionBook, SimState

logger = logging.getLogger(__name__)

FORMAT = "trendbotd-sim-state"
VERSION = 1

T = TypeVar("T", SimOrder, SimAlgoOrder, Fill, PositionBook)


class StateFormatError(ValueError):
    """The document is not a state this program can load; the message says what is wrong."""


# ----- records <-> dicts -----

_FIELDS: dict[type[Any], tuple[tuple[str, str, bool], ...]] = {}


def _fields_of(cls: type[Any]) -> tuple[tuple[str, str, bool], ...]:
    """(name, type text, required) of a record class, cached: encoding runs on every save."""
    found = _FIELDS.get(cls)
    if found is None:
        found = tuple(
            (f.name, str(f.type), f.default is MISSING and f.default_factory is MISSING)
            for f in fields(cls)
        )
        _FIELDS[cls] = found
    return found


def _record(obj: SimOrder | SimAlgoOrder | Fill | PositionBook) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _, _ in _fields_of(type(obj)):
        value = getattr(obj, name)
        if name == "spec":
            out["symbol"] = value.id
        elif isinstance(value, Decimal):
            out[name] = str(value)
        else:
            out[name] = value
    return out


def _dec(raw: object, where: str) -> Decimal:
    if not isinstance(raw, str):
        raise StateFormatError(f"{where}: expected a decimal string, got {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise StateFormatError(f"{where}: not a decimal: {raw!r}") from None
    if not value.is_finite():
        raise StateFormatError(f"{where}: not a finite decimal: {raw!r}")
    return value


def _int(raw: object, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise StateFormatError(f"{where}: expected an integer, got {raw!r}")
    return raw


def _bool(raw: object, where: str) -> bool:
    if not isinstance(raw, bool):
        raise StateFormatError(f"{where}: expected true or false, got {raw!r}")
    return raw


def _str(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise StateFormatError(f"{where}: expected a string, got {raw!r}")
    return raw


def _opt_int(raw: object, where: str) -> int | None:
    return None if raw is None else _int(raw, where)


_DECODERS = {"Decimal": _dec, "int": _int, "bool": _bool, "str": _str, "int | None": _opt_int}


def _value(kind: str, raw: object, where: str) -> object:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise StateFormatError(f"{where}: no decoder for {kind}")  # a new field type
    return decoder(raw, where)


def _decode(cls: type[T], raw: object, where: str, specs: dict[str, SymbolSpec]) -> T:
    if not isinstance(raw, dict):
        raise StateFormatError(f"{where}: expected an object")
    kwargs: dict[str, Any] = {}
    for name, kind, required in _fields_of(cls):
        if name == "spec":
            kwargs["spec"] = specs[_str(raw.get("symbol"), f"{where}.symbol")]
        elif name in raw:
            kwargs[name] = _value(kind, raw[name], f"{where}.{name}")
        elif required:
            raise StateFormatError(f"{where}: missing {name!r}")
    return cls(**kwargs)


def _section(data: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise StateFormatError(f"missing or invalid {key!r}")
    return value


# ----- the whole account -----


class RecordCache:
    """JSON text of closed orders, algo orders and fills, which never change again: a save
    re-encodes only what is open or new, so it stays cheap with a long history. Keys carry
    the status and update time, so a record that changed anyway is encoded afresh."""

    def __init__(self) -> None:
        self._texts: dict[tuple[object, ...], str] = {}
        self._next: dict[tuple[object, ...], str] = {}

    def text(self, obj: SimOrder | SimAlgoOrder | Fill, key: tuple[object, ...] | None) -> str:
        found = None if key is None else self._texts.get(key)
        if found is None:
            found = json.dumps(_record(obj), separators=_COMPACT)
        if key is not None:
            self._next[key] = found
        return found

    def rotate(self) -> None:
        """Forget what the last encoding did not use (pruned history)."""
        self._texts, self._next = self._next, {}


_COMPACT = (",", ":")


def encode(
    state: SimState,
    *,
    clock_ms: int,
    market: dict[str, Any],
    cache: RecordCache | None = None,
) -> str:
    """The account as JSON text (call under the state lock)."""
    head = {
        "format": FORMAT,
        "version": VERSION,
        "clock_ms": clock_ms,
        "market": market,
        "account": {
            "wallet": str(state.wallet),
            "wallet_update_ms": state.wallet_update_ms,
            "realized_pnl": str(state.realized_pnl),
            "dual_side": state.dual_side,
            "multi_assets": state.multi_assets,
        },
        "next_ids": asdict(state.ids),
        "symbols": _symbols(state),
        "protection": state.protection.to_dict(),
    }
    records = cache or RecordCache()
    orders = [
        records.text(o, None if o.is_open else ("o", o.order_id, o.status, o.update_ms))
        for o in state.orders.values()
    ]
    algos = [
        records.text(a, None if a.is_open else ("a", a.algo_id, a.status, a.update_ms))
        for a in state.algos.values()
    ]
    fills = [records.text(f, ("f", f.trade_id, f.order_id, f.at_ms)) for f in state.fills]
    records.rotate()
    return "".join(
        (
            json.dumps(head, separators=_COMPACT)[:-1],
            ',"orders":[',
            ",".join(orders),
            '],"algo_orders":[',
            ",".join(algos),
            '],"fills":[',
            ",".join(fills),
            "]}",
        )
    )


def _symbols(state: SimState) -> dict[str, Any]:
    symbols: dict[str, Any] = {}
    for sid, book in state.books.items():
        source = state.tapes[sid].source
        pin = state.pinned(sid)
        symbols[sid] = {
            "position": _record(book),
            "synced_ms": state.synced_ms[sid],
            "pinned_price": None if pin is None else str(pin),
            "csv_shift_bars": source.shift_bars if isinstance(source, CsvCandles) else None,
        }
    return symbols


def check_header(data: object) -> dict[str, Any]:
    """The document if its format and version are ones this program reads."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFormatError(f"not a {FORMAT} document")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StateFormatError(f"invalid version {version!r}")
    if version > VERSION:
        raise StateFormatError(
            f"format version {version} is newer than this program reads ({VERSION})"
        )
    clock = data.get("clock_ms")
    if isinstance(clock, bool) or not isinstance(clock, int):
        raise StateFormatError(f"invalid clock_ms {clock!r}")
    return data


_ID_KEYS = ("order", "algo", "client", "trade")


def _known(symbol: object, specs: dict[str, SymbolSpec]) -> bool:
    return isinstance(symbol, str) and symbol in specs


class _Decoded:
    """Everything decoded before any of it touches the live state (all or nothing)."""

    def __init__(self, data: dict[str, Any], specs: dict[str, SymbolSpec]) -> None:
        account = _section(data, "account", dict)
        self.wallet = _dec(account.get("wallet"), "account.wallet")
        self.wallet_update_ms = _int(account.get("wallet_update_ms"), "account.wallet_update_ms")
        self.realized_pnl = _dec(account.get("realized_pnl"), "account.realized_pnl")
        self.dual_side = _bool(account.get("dual_side"), "account.dual_side")
        self.multi_assets = _bool(account.get("multi_assets"), "account.multi_assets")
        ids = _section(data, "next_ids", dict)
        self.next_ids = {k: _int(ids.get(k), f"next_ids.{k}") for k in _ID_KEYS}
        self.books: dict[str, PositionBook] = {}
        self.synced: dict[str, int] = {}
        self.pins: dict[str, Decimal] = {}
        self.shifts: dict[str, int] = {}
        unknown: set[str] = set()
        for sid, entry in _section(data, "symbols", dict).items():
            where = f"symbols.{sid}"
            if not isinstance(entry, dict):
                raise StateFormatError(f"{where}: expected an object")
            book = _decode(PositionBook, entry.get("position"), f"{where}.position", specs)
            if sid not in specs:
                if book.amount != 0:
                    raise StateFormatError(
                        f"a {sid} position of {book.amount} but {sid} is not a configured "
                        "symbol (add it to the symbols or move the file away)"
                    )
                unknown.add(sid)
                continue
            self.books[sid] = book
            self.synced[sid] = _int(entry.get("synced_ms"), f"{where}.synced_ms")
            pin = entry.get("pinned_price")
            if pin is not None:
                self.pins[sid] = _dec(pin, f"{where}.pinned_price")
            shift = entry.get("csv_shift_bars")
            if shift is not None:
                self.shifts[sid] = _int(shift, f"{where}.csv_shift_bars")
        orders = self._records(SimOrder, data, "orders", specs, unknown)
        self.orders = {o.order_id: o for o in sorted(orders, key=lambda o: o.order_id)}
        algos = self._records(SimAlgoOrder, data, "algo_orders", specs, unknown)
        self.algos = {a.algo_id: a for a in sorted(algos, key=lambda a: a.algo_id)}
        self.fills = self._records(Fill, data, "fills", specs, unknown)
        self.protection = data.get("protection")
        if unknown:
            logger.warning(
                "sim.state.dropped_history symbols=%s reason=not_configured",
                ",".join(sorted(unknown)),
            )

    @staticmethod
    def _records(
        record_type: type[T],
        data: dict[str, Any],
        key: str,
        specs: dict[str, SymbolSpec],
        unknown: set[str],
    ) -> list[T]:
        out: list[T] = []
        for i, raw in enumerate(_section(data, key, list)):
            symbol = raw.get("symbol") if isinstance(raw, dict) else None
            if not _known(symbol, specs):
                status = raw.get("status") if isinstance(raw, dict) else None
                if status in ("NEW", "PARTIALLY_FILLED"):
                    raise StateFormatError(
                        f"{key}[{i}]: an open order on {symbol!r}, which is not a configured "
                        "symbol (add it to the symbols or move the file away)"
                    )
                unknown.add(str(symbol))
                continue
            out.append(_decode(record_type, raw, f"{key}[{i}]", specs))
        return out


def restore(state: SimState, data: dict[str, Any]) -> None:
    """Replace the account with the document's (checked in full first: all or nothing).
    Symbols the document does not know start flat."""
    decoded = _Decoded(check_header(data), state.specs)
    with state.lock:
        now = state.now_ms()
        state.wallet = decoded.wallet
        state.wallet_update_ms = decoded.wallet_update_ms
        state.realized_pnl = decoded.realized_pnl
        state.dual_side = decoded.dual_side
        state.multi_assets = decoded.multi_assets
        for sid, book in decoded.books.items():
            state.books[sid] = book
            # matching resumes where it stopped (fills during the downtime happen, as on a
            # real exchange) unless the clock now runs behind the file
            state.synced_ms[sid] = min(decoded.synced[sid], now)
            source = state.tapes[sid].source
            if sid in decoded.shifts and isinstance(source, CsvCandles):
                source.shift_bars = decoded.shifts[sid]
        state.pins = dict(decoded.pins)
        state.orders = decoded.orders
        state.algos = decoded.algos
        state.fills = decoded.fills
        ids = decoded.next_ids
        state.ids = IdCounters(
            order=max(ids["order"], max(state.orders, default=0) + 1),
            algo=max(ids["algo"], max(state.algos, default=0) + 1),
            client=ids["client"],
            trade=ids["trade"],
        )
        state.protection.load(decoded.protection)
        state.touch()
