"""Binance's error answers: ``{"code": -NNNN, "msg": "..."}`` with the HTTP status it uses."""

from __future__ import annotations

from collections.abc import Callable
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


def _fixed(code: int, msg: str, *, http_status: int = 400) -> Callable[[], SimError]:
    """A factory for an answer whose text never varies (a fresh exception on each call)."""
    return lambda: SimError(code, msg, http_status=http_status)


unknown_error = _fixed(
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


timestamp_outside_window = _fixed(-1021, "Timestamp for this request is outside of the recvWindow.")
timestamp_ahead = _fixed(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
bad_signature = _fixed(-1022, "Signature for this request is not valid.")
api_key_format = _fixed(-2014, "API-key format invalid.", http_status=401)
api_key_rejected = _fixed(-2015, "Invalid API-key, IP, or permissions for action.", http_status=401)


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


invalid_symbol = _fixed(-1121, "Invalid symbol.")
invalid_interval = _fixed(-1120, "Invalid interval.")
order_not_found = _fixed(-2013, "Order does not exist.")
unknown_order_on_cancel = _fixed(-2011, "Unknown order sent.")
margin_insufficient = _fixed(-2019, "Margin is insufficient.")
reduce_only_rejected = _fixed(-2022, "ReduceOnly Order is rejected.")
would_trigger_immediately = _fixed(-2021, "Order would immediately trigger.")
close_position_exists = _fixed(
    -4130,
    "An open stop or take profit order with GTE and closePosition in the direction is existing.",
)


duplicate_client_id = _fixed(-4116, "ClientOrderId is duplicated.")


def notional_too_small(minimum: str) -> SimError:
    return SimError(
        -4164,
        f"Order's notional must be no smaller than {minimum} (unless you choose reduce only).",
    )


position_side_mismatch = _fixed(-4061, "Order's position side does not match user's setting.")


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
