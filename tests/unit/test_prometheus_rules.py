"""packaging/prometheus-rules.yml: valid YAML in Prometheus' rule-file shape, and every
trendbotd_* series an expression names is one the daemon really exposes (a renamed
metric would otherwise leave an alert that can never fire)."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trendbotd.adapters.metrics import build_registry
from trendbotd.metrics_view import OUTCOMES, PURPOSES, UNFINISHED, JournalView

RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus-rules.yml"
REQUIRED = {
    "TrendbotdDown",
    "TrendbotdPositionWithoutStop",
    "TrendbotdTickStalled",
    "TrendbotdReduceOnly",
    "TrendbotdHalted",
    "TrendbotdClockOffset",
}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"}
        rules.extend(group["rules"])
    return rules


def _exposed_series() -> set[str]:
    """Every sample name a fully populated registry exposes."""
    view = JournalView(
        mode="normal",
        last_tick_s=1.0,
        last_sync_s=1.0,
        clock_offset_s=0.0,
        positions={"BTC/USDT:USDT": Decimal(1)},
        notional={"BTC/USDT:USDT": Decimal(1)},
        positions_without_stop=0,
        unfinished_intents=dict.fromkeys(UNFINISHED, 0),
        orders={(p, o): 0 for p in PURPOSES for o in OUTCOMES},
    )
    registry, sink = build_registry(
        read_view=lambda: view, ready=lambda: True, tick_interval_s=lambda: 60
    )
    sink.exchange_error(code="-1021")  # labelled: no series before the first error
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_rules_file_shape() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
    by_name = {r["alert"]: r for r in rules}
    assert by_name["TrendbotdPositionWithoutStop"]["for"] == "1m"
    assert "3 * trendbotd_tick_interval_seconds" in by_name["TrendbotdTickStalled"]["expr"]


def test_rules_name_only_exposed_series() -> None:
    exposed = _exposed_series()
    named = {m for r in _rules() for m in re.findall(r"\btrendbotd_\w+", str(r["expr"]))}
    assert named, "no trendbotd_ series in the rules"
    assert named <= exposed, named - exposed


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) absent")
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
