"""An AlertSink that records what was emitted, for tests of the code that emits."""

from __future__ import annotations

from trendbotd.alerts.sink import FieldValue


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, FieldValue]]] = []

    def emit(
        self, event: str, *, alert_id: str | None = None, key: str = "", **fields: FieldValue
    ) -> str | None:
        self.events.append((event, fields))
        return "id"
