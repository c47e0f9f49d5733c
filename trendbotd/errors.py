"""The exception tree. Each class says what the operator or the loop must do about it.

Every error carries the exit code the process ends with when it escapes to the top.
ccxt errors are translated into these at the exchange boundary (``raise ... from e``).
"""

from __future__ import annotations

from trendbotd.exitcodes import ExitCode


class TrendbotError(Exception):
    """Base of every error the daemon raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


# --- needs a human: the process stops and systemd must not restart it in a loop ---


class OperationalError(TrendbotError):
    """Requires manual intervention; the daemon stops."""


class ConfigError(OperationalError):
    """The configuration is invalid. The message names the file, key and line."""

    exit_code = ExitCode.CONFIG_ERROR


class InstanceLockedError(OperationalError):
    """Another live process holds the instance lock."""

    exit_code = ExitCode.ALREADY_RUNNING


class LockPathError(OperationalError):
    """The lock path is unsafe or unusable (symlink, foreign owner, not writable)."""

    exit_code = ExitCode.CANT_CREATE


class CredentialsError(OperationalError):
    """Credentials missing, unreadable, or stored with unsafe permissions."""

    exit_code = ExitCode.NO_PERMISSION


class JournalError(OperationalError):
    """The order journal is unreadable or corrupt. It is never silently recreated."""

    exit_code = ExitCode.DATA_ERROR


class JournalIOError(JournalError):
    """The journal could not be written or read (disk full, I/O error, permissions)."""

    exit_code = ExitCode.IO_ERROR


class StatePathError(OperationalError):
    """No usable state directory for the journal (configured one unusable, none found)."""

    exit_code = ExitCode.CANT_CREATE


class StartupSyncError(OperationalError):
    """Startup could not learn the exchange's truth within the start timeout."""

    exit_code = ExitCode.UNAVAILABLE


class UnsupportedAccountModeError(OperationalError):
    """The account is in a mode the bot does not trade (hedge mode, multi-assets)."""

    exit_code = ExitCode.CONFIG_ERROR


# --- exchange errors, translated at the adapter boundary ---


class ExchangeError(TrendbotError):
    """Any failure talking to the exchange."""

    exit_code = ExitCode.UNAVAILABLE


class TransientExchangeError(ExchangeError):
    """Network blip, gateway error, maintenance: a read may be retried with backoff."""


class RateLimitedError(TransientExchangeError):
    """The exchange asked us to slow down. Back off; never provoke a ban (HTTP 418)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after_of(error: BaseException) -> float | None:
    """The wait the exchange asked for, when ``error`` carries one (the retry's hint)."""
    return error.retry_after_s if isinstance(error, RateLimitedError) else None


class RequestHeldError(RateLimitedError):
    """Held back by our own weight budget before sending: nothing left the host."""


class ClockSkewError(TransientExchangeError):
    """Request timestamp outside recvWindow (-1021): re-measure the clock offset."""


class ExchangeAuthError(ExchangeError, OperationalError):
    """Credentials rejected or lacking permission. Stop with a clear message."""

    exit_code = ExitCode.NO_PERMISSION


class InvalidOrderError(ExchangeError):
    """The exchange refused the order as such. Retrying the same order will not help."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InsufficientFundsError(InvalidOrderError):
    """Margin insufficient (-2019)."""


class ReduceOnlyRejectedError(InvalidOrderError):
    """A reduce-only order would not reduce the position (-2022)."""


class DuplicateClientOrderIdError(InvalidOrderError):
    """An open order already carries this client order id (-4116)."""


class OrderNotFoundError(ExchangeError):
    """The exchange has no order with that id (-2013 / -2011)."""


class OutcomeUnknownError(ExchangeError):
    """An order-changing call may or may not have taken effect.

    Never resend blindly: ask the exchange by client order id first.
    """

    def __init__(self, message: str, *, client_order_id: str | None = None) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


class ClockNotSyncedError(TrendbotError):
    """Orders refused: the exchange clock offset is unknown or beyond the bound."""

    exit_code = ExitCode.UNAVAILABLE


# --- the cluster's lock (etcd) ---


class ClusterError(TrendbotError):
    """Any failure talking to etcd. A leader that sees one stops sending orders."""

    exit_code = ExitCode.UNAVAILABLE


class EtcdUnavailableError(ClusterError):
    """No endpoint answered within the call's timeout (down, partitioned, or no quorum)."""


class EtcdRequestError(ClusterError):
    """etcd answered and refused the request (its gRPC code and message are kept)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class EtcdAuthError(EtcdRequestError, OperationalError):
    """etcd rejected the user/password. Stop with a clear message."""

    exit_code = ExitCode.NO_PERMISSION


class LeaseLostError(ClusterError):
    """The lease is gone (expired or revoked): whatever it held is no longer ours."""


class NotLeaderError(ClusterError):
    """An order-changing call refused before sending: this node does not hold the leader
    lease, or its send window (renewal sent + TTL - margin) has closed."""


class LeadershipLostError(ClusterError, OperationalError):
    """The leader was demoted while trading: the process exits at once (69) and systemd
    restarts it as a standby, with nothing of the old leadership left in memory."""

    exit_code = ExitCode.UNAVAILABLE
