"""Historical candles from a CSV file, checked row by row.

Format: a header row naming the columns ``timestamp, open, high, low, close, volume``
(any order, any case; other columns are ignored), then one candle per row. The
timestamp is the bar's open time, either epoch milliseconds (epoch seconds are
recognised by their size) or ISO 8601 (``2024-01-01T00:00:00Z``; without an offset it
is taken as UTC). Rows may come in any order. Duplicate timestamps and gaps are not
errors: they are listed in the ``DataReport``. A malformed row is an error that names
the file and line: ``data.csv:17: high 99.5 is below low 100``.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from trendbotd.core.strategy.candles import CandleArrays
from trendbotd.errors import TrendbotError
from trendbotd.exitcodes import ExitCode

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_SECONDS_BELOW = 100_000_000_000  # an epoch value below this is seconds (before 1973 in ms)
_SHOW = 5  # how many duplicates/gaps a report names


class BacktestDataError(TrendbotError):
    """The candle file is missing, unreadable or holds a malformed row."""

    exit_code = ExitCode.DATA_ERROR


@dataclass(frozen=True, slots=True)
class Gap:
    after_ms: int  # open time of the last bar before the gap
    missing: int  # whole bars missing


@dataclass(frozen=True, slots=True)
class DataReport:
    path: Path
    rows: int  # data rows in the file
    candles: int  # candles kept (duplicates dropped)
    timeframe_ms: int  # the most common spacing
    first_ms: int
    last_ms: int
    unsorted: bool  # rows were not in ascending time (they were sorted)
    duplicates: tuple[int, ...]  # timestamps that occurred more than once
    conflicting: int  # of those, how many had different values (the first row was kept)
    gaps: tuple[Gap, ...]
    irregular: int  # spacings that are not a whole number of bars

    @property
    def missing_bars(self) -> int:
        return sum(g.missing for g in self.gaps)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.gaps or self.irregular)

    def lines(self) -> list[str]:
        """Human-readable summary: one line, plus one per kind of problem."""
        out = [
            f"data: {self.path}: {self.candles} candles of {format_timeframe(self.timeframe_ms)}"
            f" from {format_ms(self.first_ms)} to {format_ms(self.last_ms)}"
        ]
        if self.unsorted:
            out.append("data: rows were not in time order; sorted")
        if self.duplicates:
            shown = ", ".join(format_ms(t) for t in self.duplicates[:_SHOW])
            more = " ..." if len(self.duplicates) > _SHOW else ""
            out.append(
                f"data: {len(self.duplicates)} duplicate timestamps ({self.conflicting} with "
                f"different values), first row kept: {shown}{more}"
            )
        if self.gaps:
            shown = ", ".join(
                f"{g.missing} after {format_ms(g.after_ms)}" for g in self.gaps[:_SHOW]
            )
            more = " ..." if len(self.gaps) > _SHOW else ""
            out.append(
                f"data: {len(self.gaps)} gaps, {self.missing_bars} bars missing: {shown}{more}"
            )
        if self.irregular:
            out.append(
                f"data: {self.irregular} spacings are not a whole number of "
                f"{format_timeframe(self.timeframe_ms)} bars"
            )
        return out


@dataclass(frozen=True, slots=True)
class LoadedData:
    candles: CandleArrays
    report: DataReport


def format_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_timeframe(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _parse_time(text: str) -> int:
    value = text.strip()
    digits = value[:-2] if value.endswith(".0") else value
    if digits.isdigit():
        number = int(digits)
        return number * 1000 if number < _SECONDS_BELOW else number
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"timestamp {value!r} is neither epoch milliseconds nor ISO 8601"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _parse_number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text.strip()!r} is not a finite number")
    return value


def _check_bar(o: float, h: float, lo: float, c: float, v: float) -> None:
    if lo <= 0:
        raise ValueError(f"low {lo:g} is not positive")
    if h < lo:
        raise ValueError(f"high {h:g} is below low {lo:g}")
    if not lo <= o <= h:
        raise ValueError(f"open {o:g} is outside low..high {lo:g}..{h:g}")
    if not lo <= c <= h:
        raise ValueError(f"close {c:g} is outside low..high {lo:g}..{h:g}")
    if v < 0:
        raise ValueError(f"volume {v:g} is negative")


def _header(row: list[str], path: Path) -> list[int]:
    names = [c.strip().lower() for c in row]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise BacktestDataError(
            f"{path}:1: header must name the columns {', '.join(COLUMNS)}; "
            f"missing {', '.join(missing)} (got {','.join(row)[:80]!r})"
        )
    return [names.index(c) for c in COLUMNS]


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                yield reader.line_num, row
    except FileNotFoundError:
        raise BacktestDataError(f"{path}: data file not found") from None
    except IsADirectoryError:
        raise BacktestDataError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise BacktestDataError(f"{path}: data file not readable (permission denied)") from None
    except UnicodeDecodeError as e:
        raise BacktestDataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise BacktestDataError(f"{path}: not a CSV file: {e}") from None


Row = tuple[int, float, float, float, float, float]


def _parse(path: Path) -> tuple[list[Row], bool]:
    """All data rows in file order and whether they were already in ascending time."""
    rows: list[Row] = []
    columns: list[int] | None = None
    ordered = True
    for line, fields in _rows(path):
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line
        if columns is None:
            columns = _header(fields, path)
            continue
        if len(fields) <= max(columns):
            raise BacktestDataError(
                f"{path}:{line}: expected {max(columns) + 1} fields, got {len(fields)}"
            )
        try:
            ts = _parse_time(fields[columns[0]])
            o, h, lo, c, v = (
                _parse_number(name, fields[i])
                for name, i in zip(COLUMNS[1:], columns[1:], strict=True)
            )
            _check_bar(o, h, lo, c, v)
        except ValueError as e:
            raise BacktestDataError(f"{path}:{line}: {e}") from None
        if rows and ts < rows[-1][0]:
            ordered = False
        rows.append((ts, o, h, lo, c, v))
    if columns is None:
        raise BacktestDataError(f"{path}: empty file (expected a header and candles)")
    return rows, ordered


def _spacing_report(times: list[int], timeframe_ms: int) -> tuple[tuple[Gap, ...], int]:
    gaps: list[Gap] = []
    irregular = 0
    for before, after in itertools.pairwise(times):
        step = after - before
        if step == timeframe_ms:
            continue
        if step % timeframe_ms == 0:
            gaps.append(Gap(after_ms=before, missing=step // timeframe_ms - 1))
        else:
            irregular += 1
    return tuple(gaps), irregular


def load_csv(path: Path) -> LoadedData:
    """Candles sorted by time, one per timestamp, and what was odd about the file."""
    rows, ordered = _parse(path)
    rows.sort(key=lambda r: r[0])  # stable: among duplicates the file's first row stays first
    kept: list[Row] = []
    duplicates: list[int] = []
    conflicting: set[int] = set()
    for row in rows:
        if kept and row[0] == kept[-1][0]:
            if not duplicates or duplicates[-1] != row[0]:
                duplicates.append(row[0])
            if row != kept[-1]:
                conflicting.add(row[0])
            continue
        kept.append(row)
    if len(kept) < 2:
        raise BacktestDataError(f"{path}: need at least 2 candles, found {len(kept)}")
    times = [r[0] for r in kept]
    spacings, counts = np.unique(np.diff(np.asarray(times, dtype=np.int64)), return_counts=True)
    timeframe_ms = int(spacings[np.argmax(counts)])  # the most common; ties: the shortest
    gaps, irregular = _spacing_report(times, timeframe_ms)
    columns = np.asarray(kept, dtype=np.float64).T
    candles = CandleArrays(
        open_time_ms=np.asarray(times, dtype=np.int64),
        open=columns[1].copy(),
        high=columns[2].copy(),
        low=columns[3].copy(),
        close=columns[4].copy(),
        volume=columns[5].copy(),
    )
    report = DataReport(
        path=path,
        rows=len(rows),
        candles=len(kept),
        timeframe_ms=timeframe_ms,
        first_ms=times[0],
        last_ms=times[-1],
        unsorted=not ordered,
        duplicates=tuple(duplicates),
        conflicting=len(conflicting),
        gaps=gaps,
        irregular=irregular,
    )
    return LoadedData(candles=candles, report=report)
