"""The session-wide network guard in tests/conftest.py really fires (and lets loopback by)."""

from __future__ import annotations

import socket
import threading

import pytest
import requests


def _guard_error(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    assert type(excinfo.value).__name__ == "NetworkGuardError"
    assert "tests may only use 127.0.0.1" in str(excinfo.value)


def test_connect_to_a_public_address_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
        pytest.raises(RuntimeError) as excinfo,
    ):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: would hang or fail if it got out
    _guard_error(excinfo)
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6,
        pytest.raises(RuntimeError) as excinfo,
    ):
        s6.connect_ex(("2001:db8::1", 443))
    _guard_error(excinfo)


def test_udp_sendto_and_name_lookup_are_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
        pytest.raises(RuntimeError) as excinfo,
    ):
        s.sendto(b"x", ("198.51.100.7", 53))
    _guard_error(excinfo)
    with pytest.raises(RuntimeError) as excinfo:
        socket.getaddrinfo("fapi.binance.com", 443)
    _guard_error(excinfo)


def test_an_http_client_cannot_swallow_the_guard_as_a_network_error() -> None:
    # requests/urllib3 retry or wrap OSErrors; the guard error must come through as itself.
    with pytest.raises(RuntimeError) as excinfo:
        requests.get("https://fapi.binance.com/fapi/v1/time", timeout=2)
    _guard_error(excinfo)


def test_ccxt_without_a_base_url_fails_loudly_instead_of_leaking() -> None:
    from ccxt.binanceusdm import binanceusdm

    client = binanceusdm({"enableRateLimit": False, "timeout": 2000})
    with pytest.raises(RuntimeError) as excinfo:
        client.fetch_time()
    _guard_error(excinfo)


def test_loopback_still_works() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        accepted: list[bytes] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                accepted.append(conn.recv(16))

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("localhost", port), timeout=5) as client:
            client.sendall(b"ping")
        thread.join(timeout=5)
    assert accepted == [b"ping"]
