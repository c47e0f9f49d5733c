"""TOML (stdlib tomllib) parsed into the sections of model.py; every error names the file,
the key and, where the key appears in the file, its line."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from trendbotd.config.checks import Problem, alerts_problems, semantic_problems
from trendbotd.config.model import (
    _INSTANCE_NAME,
    DEFAULT_CONFIG_PATH,
    SECTIONS,
    AlertChannelConfig,
    Config,
    StrategyParams,
)
from trendbotd.errors import ConfigError


def load_config(path: Path | None, *, paper: bool = False) -> Config:
    """Load and validate. ``path=None`` means the default path if it exists, else defaults.

    ``paper=True`` (the ``--paper`` flag) forces the simulated exchange whatever the file says.
    """
    if path is None:
        if DEFAULT_CONFIG_PATH.exists():
            path = DEFAULT_CONFIG_PATH
        else:
            config = Config()
            return _force_paper(config) if paper else config
    text = _read(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from e
    config = _build(raw, path=path, text=text)
    _check_semantics(config, path=path, text=text)
    return _force_paper(config) if paper else config


def load_alert_config(path: Path | None) -> Config:
    """Only ``[instance]`` and ``[alerts]``, validated; every other table is ignored.

    ``trendbotd alert`` must still report a unit that failed on a mistake elsewhere in the
    file (exit 78), so it does not let that mistake silence the alert."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    text = _read(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from e
    wanted = {k: v for k, v in raw.items() if k in ("instance", "alerts")}
    config = _build(wanted, path=path, text=text)
    problems = alerts_problems(config.alerts)
    if not _INSTANCE_NAME.match(config.instance.name):
        problems.insert(0, ("instance", "name", "is not a valid instance name"))
    if problems:
        table, key, message = problems[0]
        raise ConfigError(f"{_where(path, text, table, key or None)}: {table}.{key}: {message}")
    return config


def _force_paper(config: Config) -> Config:
    return dataclasses.replace(config, exchange=dataclasses.replace(config.exchange, paper=True))


def _read(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{path}: is a directory, not a config file") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: config file not readable (permission denied)") from e
    except OSError as e:
        raise ConfigError(f"{path}: config file not readable: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e


def _where(path: Path, text: str, table: str, key: str | None) -> str:
    line = _line_of(text, table, key)
    return f"{path}:{line}" if line else str(path)


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Best-effort line number of ``key`` inside ``[table]`` (or of the table header)."""
    current = ""
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1).replace('"', "").replace(" ", "")
            if key is None and current == table:
                return number
            continue
        if key is not None and current == table:
            km = re.match(r'^\s*"?([A-Za-z0-9_.:/-]+)"?\s*=', line)
            if km and km.group(1) == key:
                return number
    return None


def _build(raw: dict[str, Any], *, path: Path, text: str) -> Config:
    sections: dict[str, Any] = {}
    overrides: dict[str, StrategyParams] = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            known = ", ".join(sorted(SECTIONS))
            raise ConfigError(
                f"{_where(path, text, name, None)}: unknown section [{name}] (known: {known})"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(path, text, '', name)}: {name} must be a [{name}] table")
        if name == "strategy" and "symbols" in value:
            per_symbol = value.pop("symbols")
            overrides = _build_overrides(per_symbol, base=value, path=path, text=text)
        if name == "alerts" and "channels" in value:
            value["channels"] = _build_channels(value["channels"], path=path, text=text)
        sections[name] = _build_section(SECTIONS[name], value, table=name, path=path, text=text)
    return Config(source=path, strategy_overrides=overrides, **sections)


def _build_overrides(
    per_symbol: Any, *, base: dict[str, Any], path: Path, text: str
) -> dict[str, StrategyParams]:
    if not isinstance(per_symbol, dict):
        raise ConfigError(f"{path}: strategy.symbols must be a table of per-symbol tables")
    result: dict[str, StrategyParams] = {}
    for symbol, table in per_symbol.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: strategy.symbols.{symbol!r} must be a table")
        merged = {**base, **table}
        result[symbol] = _build_section(
            StrategyParams, merged, table=f"strategy.symbols.{symbol}", path=path, text=text
        )
    return result


def _build_channels(tables: Any, *, path: Path, text: str) -> tuple[AlertChannelConfig, ...]:
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: alerts.channels must be a table of [alerts.channels.NAME]")
    result: list[AlertChannelConfig] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: alerts.channels.{name} must be a table")
        if "name" in table:
            raise ConfigError(f"{path}: alerts.channels.{name}: the table name is the name")
        result.append(
            _build_section(
                AlertChannelConfig,
                {**table, "name": name},
                table=f"alerts.channels.{name}",
                path=path,
                text=text,
            )
        )
    return tuple(result)


def _build_section(
    cls: type[Any], values: dict[str, Any], *, table: str, path: Path, text: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{_where(path, text, table, key)}: {table}.{key}: unknown key "
                f"(known: {', '.join(sorted(known))})"
            )
        try:
            kwargs[key] = _coerce(value, hints[key])
        except _TypeMismatchError as e:
            raise ConfigError(
                f"{_where(path, text, table, key)}: {table}.{key}: expected {e.expected}, "
                f"got {_show(value)}"
            ) from None
    return cls(**kwargs)


class _TypeMismatchError(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _show(value: Any) -> str:
    shown = repr(value) if not isinstance(value, str) else f'"{value}"'
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Scalar field types: what a TOML value must be, how the error names it, the conversion.
_SCALARS: dict[Any, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    bool: (lambda v: isinstance(v, bool), "true or false", bool),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", int),
    float: (_is_number, "a number", float),
    Path: (lambda v: isinstance(v, str) and bool(v), "a path string", Path),
    str: (lambda v: isinstance(v, str), "a string", str),
}


def _coerce(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0])
    if origin is Literal:
        if value not in args:
            raise _TypeMismatchError("one of " + ", ".join(f'"{a}"' for a in args))
        return value
    if origin is tuple and args and args[0] is AlertChannelConfig:
        return value  # built by _build_channels
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _TypeMismatchError("a list of strings")
        return tuple(value)
    if hint is Decimal:
        return _to_decimal(value)
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        accepts, expected, convert = scalar
        if not accepts(value):
            raise _TypeMismatchError(expected)
        return convert(value)
    raise _TypeMismatchError(str(hint))  # pragma: no cover - a schema field of unsupported type


def _to_decimal(value: Any) -> Decimal:
    # Money as a string ("10000.5") keeps exact decimals; integers are exact too.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _TypeMismatchError("a decimal number or a string holding one")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise _TypeMismatchError("a decimal number or a string holding one") from None
    if not result.is_finite():
        raise _TypeMismatchError("a finite decimal number")
    return result


def _check_semantics(config: Config, *, path: Path, text: str) -> None:
    problems: list[Problem] = semantic_problems(config)
    if problems:
        table, key, message = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ConfigError(f"{_where(path, text, table, key)}: {table}.{key}: {message}{more}")
