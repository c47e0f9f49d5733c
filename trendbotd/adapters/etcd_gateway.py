"""A thin etcd v3 client over its JSON gateway (POST /v3/...), stdlib urllib only.

No grpcio/protobuf in the trading process, as in Patroni (patroni/dcs/etcd3.py). Keys and
values travel base64-encoded; int64s arrive as strings and fields holding zero or false
are left out of answers (proto3 JSON), so every read below has a default.

Every call has one deadline (``timeout_s``) shared by the endpoints it tries: an endpoint
that refuses or times out is skipped for the next one, and the one that answered is tried
first next time. etcd answering with an error is final (not failed over): another member
would say the same.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trendbotd.adapters.credentials import EtcdCredentials
from trendbotd.errors import (
    EtcdAuthError,
    EtcdRequestError,
    EtcdUnavailableError,
    LeaseLostError,
)

logger = logging.getLogger(__name__)

_GRPC_NOT_FOUND: Final = 5
_GRPC_UNAUTHENTICATED: Final = 16
_GRPC_INVALID_ARGUMENT: Final = 3
_MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int  # the epoch of a leader key: grows with every new holder
    mod_revision: int
    lease: int  # 0 when not bound to a lease


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class CreateResult:
    created: bool
    current: KeyValue | None  # the key as it is after the txn (ours when created)
    revision: int  # the store revision the answer was taken at


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(raw.get("key", "")).decode("utf-8", "replace"),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


class EtcdGateway:
    """Calls are thread-safe; each one blocks at most ``timeout_s`` (plus auth, once)."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float,
        ca_file: Path | None = None,
        credentials: EtcdCredentials | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint")
        if not all(e.startswith(("http://", "https://")) for e in endpoints):
            raise ValueError("etcd endpoints must be http:// or https:// URLs")
        self._endpoints = [e.rstrip("/") for e in endpoints]
        self._timeout_s = timeout_s
        self._credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._preferred = 0
        self._token: str | None = None
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
            handlers.append(urllib.request.HTTPSHandler(context=context))
        # never through a proxy from the environment: the lease must talk to etcd itself
        self._opener = urllib.request.build_opener(*handlers)

    # --- key-value ---

    def get(self, key: str) -> KeyValue | None:
        answer = self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = answer.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def create_if_absent(self, key: str, value: bytes, lease_id: int) -> CreateResult:
        """Put ``key`` bound to the lease only if it does not exist (create_revision == 0)."""
        k = _b64(key)
        answer = self._call(
            "/v3/kv/txn",
            {
                "compare": [
                    {"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
                ],
                "success": [
                    {"request_put": {"key": k, "value": _b64(value), "lease": str(lease_id)}},
                    {"request_range": {"key": k}},
                ],
                "failure": [{"request_range": {"key": k}}],
            },
        )
        created = bool(answer.get("succeeded", False))
        current: KeyValue | None = None
        for response in answer.get("responses") or []:
            kvs = (response.get("response_range") or {}).get("kvs") or []
            if kvs:
                current = _kv(kvs[0])
        return CreateResult(created, current, int(answer.get("header", {}).get("revision", 0)))

    def put_if_epoch(
        self, key: str, value: bytes, *, leader_key: str, epoch: int, holder: bytes
    ) -> bool:
        """Put ``key`` only while ``leader_key`` is still the one created at revision ``epoch``
        and still names ``holder``: a deposed leader's write fails."""
        lk = _b64(leader_key)
        answer = self._call(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": lk,
                        "result": "EQUAL",
                        "target": "CREATE",
                        "create_revision": str(epoch),
                    },
                    {"key": lk, "result": "EQUAL", "target": "VALUE", "value": _b64(holder)},
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        return bool(answer.get("succeeded", False))

    def delete(self, key: str) -> int:
        """Delete ``key``; the number of keys deleted (0 or 1)."""
        answer = self._call("/v3/kv/deleterange", {"key": _b64(key)})
        return int(answer.get("deleted", 0))

    # --- leases ---

    def grant(self, ttl_s: int) -> Lease:
        answer = self._call("/v3/lease/grant", {"TTL": str(ttl_s), "ID": "0"})
        if answer.get("error"):
            raise EtcdRequestError(f"etcd lease grant: {answer['error']}")
        return Lease(int(answer["ID"]), int(answer.get("TTL", 0)))

    def keepalive(self, lease_id: int) -> int:
        """Renew the lease; its TTL. An answer without TTL means the lease is gone."""
        answer = self._call("/v3/lease/keepalive", {"ID": str(lease_id)})
        ttl = int((answer.get("result") or {}).get("TTL", 0))
        if ttl <= 0:
            raise LeaseLostError(f"etcd lease {lease_id:x} has expired or was revoked")
        return ttl

    def revoke(self, lease_id: int) -> None:
        """Revoke the lease (deleting its keys at once); a lease already gone is fine."""
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdRequestError as e:
            if e.code != _GRPC_NOT_FOUND:
                raise

    # --- transport ---

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._call_once(path, body)
        except EtcdRequestError as e:
            # a token expires on etcd's side (--auth-token-ttl): authenticate again, once
            if self._credentials is None or e.code not in (
                _GRPC_UNAUTHENTICATED,
                _GRPC_INVALID_ARGUMENT,
            ):
                raise
            if "token" not in str(e):
                raise
            with self._lock:
                self._token = None
            return self._call_once(path, body)

    def _call_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = self._clock() + self._timeout_s
        headers = {"Content-Type": "application/json"}
        if self._credentials is not None and path != "/v3/auth/authenticate":
            headers["Authorization"] = self._auth_token(deadline)
        data = json.dumps(body).encode()
        with self._lock:
            start = self._preferred
        count = len(self._endpoints)
        failures: list[str] = []
        for attempt in range(count):
            index = (start + attempt) % count
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            # share what is left fairly: one hung member must not eat every other's turn
            per_try = remaining / (count - attempt)
            endpoint = self._endpoints[index]
            try:
                answer = self._post(endpoint + path, data, headers, per_try)
            except _UnreachableError as e:
                failures.append(f"{endpoint}: {e}")
                continue
            with self._lock:
                self._preferred = index
            return answer
        tried = "; ".join(failures) or "deadline passed before any endpoint was tried"
        raise EtcdUnavailableError(f"etcd {path} failed within {self._timeout_s:g} s: {tried}")

    def _auth_token(self, deadline: float) -> str:
        with self._lock:
            token = self._token
        if token is not None:
            return token
        assert self._credentials is not None
        try:
            answer = self._call_once(
                "/v3/auth/authenticate",
                {
                    "name": self._credentials.user,
                    "password": self._credentials.password.reveal(),
                },
            )
        except EtcdRequestError as e:
            raise EtcdAuthError(
                f"etcd refused user {self._credentials.user!r} ({self._credentials.source}): {e}",
                code=e.code,
            ) from None
        token = str(answer.get("token", ""))
        if not token:
            raise EtcdAuthError("etcd authentication answered without a token")
        with self._lock:
            self._token = token
        return token

    def _post(
        self, url: str, data: bytes, headers: dict[str, str], timeout_s: float
    ) -> dict[str, Any]:
        # http(s) only: config checks every endpoint
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                raw = response.read(_MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as e:
            raw = e.read(_MAX_ANSWER_BYTES)
            e.close()
            if e.code >= 500 and not raw.startswith(b"{"):
                raise _UnreachableError(f"HTTP {e.code}") from None
            raise _refusal(url, e.code, raw) from None
        except OSError as e:  # URLError and timeouts are OSErrors
            reason = getattr(e, "reason", e)
            raise _UnreachableError(str(reason) or type(e).__name__) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _UnreachableError("answer is not JSON") from None
        if not isinstance(answer, dict):
            raise _UnreachableError("answer is not a JSON object")
        return answer


class _UnreachableError(Exception):
    """This endpoint gave no usable answer; the next one may."""


def _refusal(url: str, status: int, raw: bytes) -> EtcdRequestError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    code = body.get("code")
    return EtcdRequestError(
        f"etcd {url.rsplit('/v3', 1)[-1]}: {message}",
        code=int(code) if isinstance(code, int) else None,
    )
