"""Alert channels: a generic JSON webhook and Telegram's Bot API ``sendMessage``.

Plain ``urllib.request`` with its own timeout: one POST per message needs no new
dependency. The secret part (webhook URL, bot token) is held as a ``Secret`` and never
appears in an error message: failures name the channel, the HTTP status or the socket
error, nothing of the URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol

from trendbotd import __version__
from trendbotd.adapters.credentials import Secret
from trendbotd.alerts.events import Severity

_USER_AGENT = f"trendbotd/{__version__}"
_MAX_TELEGRAM_TEXT = 4096  # Bot API limit for one message


@dataclass(frozen=True, slots=True)
class AlertMessage:
    alert_id: str  # the first alert's id: stable, a receiver can drop a repeat
    ids: tuple[str, ...]  # every alert this message carries (coalesced repeats)
    event: str
    severity: Severity
    instance: str
    text: str
    created_ms: int
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.ids)


class DeliveryError(Exception):
    """The channel did not take the message; the sender retries later."""


class Channel(Protocol):
    name: str

    def send(self, message: AlertMessage) -> None: ...


def _post_json(url: str, body: dict[str, object], *, timeout_s: float) -> bytes:
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the URL scheme is checked in the config
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return bytes(response.read(65536))
    except urllib.error.HTTPError as e:
        raise DeliveryError(f"HTTP {e.code}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise DeliveryError(f"unreachable: {text}") from None
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout_s:g} s") from None
    except OSError as e:
        raise DeliveryError(f"connection failed: {e.strerror or type(e).__name__}") from None


class WebhookChannel:
    """POST one JSON document per message (ntfy, Slack/Discord/Matrix bridges,
    Alertmanager-style receivers take it, or a small relay reshapes it)."""

    def __init__(self, name: str, *, url: Secret, timeout_s: float) -> None:
        self.name = name
        self._url = url
        self._timeout_s = timeout_s

    def send(self, message: AlertMessage) -> None:
        body: dict[str, object] = {
            "id": message.alert_id,
            "ids": list(message.ids),
            "count": message.count,
            "event": message.event,
            "severity": message.severity.label,
            "instance": message.instance,
            "text": message.text,
            "created_ms": message.created_ms,
            "fields": message.fields,
        }
        _post_json(self._url.reveal(), body, timeout_s=self._timeout_s)


class TelegramChannel:
    """Bot API ``POST <base_url>/bot<token>/sendMessage`` with ``chat_id`` and ``text``."""

    def __init__(
        self, name: str, *, base_url: str, token: Secret, chat_id: str, timeout_s: float
    ) -> None:
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._chat_id = chat_id
        self._timeout_s = timeout_s

    def send(self, message: AlertMessage) -> None:
        text = (
            f"{message.severity.label.upper()} {message.instance}: {message.text}\n"
            f"{message.event} id={message.alert_id}"
        )
        url = f"{self._base_url}/bot{self._token.reveal()}/sendMessage"
        answer = _post_json(
            url,
            {"chat_id": self._chat_id, "text": text[:_MAX_TELEGRAM_TEXT]},
            timeout_s=self._timeout_s,
        )
        try:
            ok = json.loads(answer).get("ok") is True
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise DeliveryError("Telegram did not answer ok")
