"""Binance's error answers: ``{"code": -NNNN, "msg": "..."}`` with the HTTP status it uses."""

from __future__ import annotations

from pathlib import Path

from trendbotd.errors import OperationalError
from trendbotd.exitcodes import ExitCode


class SimError(Exception):
    """A request the simulated exchange rejects the way Binance would."""

    def __init__(self, code: int, msg: str, *, http_status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def unknown_error() -> SimError:
    return SimError(
        -1000, "An unknown error occured while processing the request.", http_status=500
    )


def too_many_requests(limit: int) -> SimError:
    return SimError(
        -1003,
        f"Too many requests; current limit is {limit} requests per minute. Please use the "
        "websocket for live updates to avoid polling the API.",
        http_status=429,
    )


def too_many_orders(limit: int, interval: str) -> SimError:
    return SimError(
        -1015, f"Too many new orders; current limit is {limit} orders per {interval}.",
        http_status=429,
    )  # fmt: skip


def ip_banned(until_ms: int) -> SimError:
    return SimError(
        -1003,
        f"Way too many requests; IP(127.0.0.1) banned until {until_ms}. Please use the "
        "websocket for live updates to avoid bans.",
        http_status=418,
    )


def timestamp_outside_window() -> SimError:
    return SimError(-1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead() -> SimError:
    return SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def bad_signature() -> SimError:
    return SimError(-1022, "Signature for this request is not valid.")


def api_key_format() -> SimError:
    return SimError(-2014, "API-key format invalid.", http_status=401)


def api_key_rejected() -> SimError:
    return SimError(-2015, "Invalid API-key, IP, or permissions for action.", http_status=401)


def mandatory(name: str) -> SimError:
    return SimError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str) -> SimError:
    return SimError(
        -1100,
        f"Illegal characters found in parameter '{name}'; legal range is "
        "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    )


def invalid_symbol() -> SimError:
    return SimError(-1121, "Invalid symbol.")


def invalid_interval() -> SimError:
    return SimError(-1120, "Invalid interval.")


def order_not_found() -> SimError:
    return SimError(-2013, "Order does not exist.")


def unknown_order_on_cancel() -> SimError:
    return SimError(-2011, "Unknown order sent.")


def margin_insufficient() -> SimError:
    return SimError(-2019, "Margin is insufficient.")


def reduce_only_rejected() -> SimError:
    return SimError(-2022, "ReduceOnly Order is rejected.")


def would_trigger_immediately() -> SimError:
    return SimError(-2021, "Order would immediately trigger.")


def close_position_exists() -> SimError:
    return SimError(
        -4130,
        "An open stop or take profit order with GTE and closePosition in the direction is "
        "existing.",
    )


def duplicate_client_id() -> SimError:
    return SimError(-4116, "ClientOrderId is duplicated.")


def notional_too_small(minimum: str) -> SimError:
    return SimError(
        -4164,
        f"Order's notional must be no smaller than {minimum} (unless you choose reduce only).",
    )


def position_side_mismatch() -> SimError:
    return SimError(-4061, "Order's position side does not match user's setting.")


def not_found_path(method: str, path: str) -> SimError:
    return SimError(-5000, f"Path {path}, Method {method} is invalid", http_status=404)


class SimStateError(OperationalError):
    """The sim's state file is unreadable, corrupt or from a newer format. It is never
    reset silently: the account it describes may hold positions a journal refers to."""

    exit_code = ExitCode.DATA_ERROR

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"simulated exchange state file {path}: {problem}")
        self.path = path
        self.problem = problem


class SimStateIOError(SimStateError):
    """The state file could not be written (disk full, permissions, I/O error)."""

    exit_code = ExitCode.IO_ERROR
