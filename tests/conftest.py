"""Session-wide network guard: tests may only talk to loopback (and AF_UNIX sockets).

Any connect/sendto to a non-loopback address, or a name lookup of anything but
localhost/loopback literals, raises NetworkGuardError. It is not an OSError on purpose:
HTTP clients (urllib3, ccxt) would turn an OSError into a retried "network error"; this
must fail the test loudly instead. Covers this pytest process only, not subprocesses.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkGuardError(RuntimeError):
    pass


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.split("%", 1)[0]  # IPv6 scope id
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in _LOCAL_NAMES
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


def _check(family: int, address: Any, what: str) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return  # AF_UNIX (notify sockets, syslog) is local by nature
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        raise NetworkGuardError(
            f"network guard: {what} to {address!r} refused; tests may only use 127.0.0.1"
        )


@pytest.fixture(autouse=True, scope="session")
def network_guard() -> Iterator[None]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check(self.family, address, "connect")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self.family, address, "connect")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _check(self.family, args[-1], "sendto")
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "", b"") and not _is_loopback(host):
            raise NetworkGuardError(
                f"network guard: name lookup of {host!r} refused; tests may only use 127.0.0.1"
            )
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket.socket, "sendto", sendto)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(autouse=True)
def restore_signal_handlers() -> Iterator[None]:
    """``cli.main(["run", ...])`` in-process installs the daemon's flag-only stop handlers;
    pytest itself must keep dying on SIGTERM and stopping on Ctrl-C after such a test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
