"""packaging/prometheus-rules.yml: valid YAML in Prometheus' rule-file shape, and every
trendbotd_* series an expression names is one the daemon really exposes (a renamed
metric would otherwise leave an alert that can never fire)."""

from __future__ import annotations

import json
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
from trendbotd.journal.metrics_view import OUTCOMES, PURPOSES, UNFINISHED, JournalView

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


PROMTOOL_CASES = """\
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'trendbotd_positions_without_stop{{instance="h"}}'
        values: '0 0 1 1 1 1 1 0 0'
      - series: 'trendbotd_last_tick_timestamp_seconds{{instance="h"}}'
        values: '0+30x6 180x10'
      - series: 'trendbotd_tick_interval_seconds{{instance="h"}}'
        values: '60x16'
      - series: 'trendbotd_mode{{instance="h",mode="halted"}}'
        values: '0 0 1'
    alert_rule_test:
      - eval_time: 90s
        alertname: TrendbotdPositionWithoutStop
        exp_alerts: []
      - eval_time: 2m
        alertname: TrendbotdPositionWithoutStop
        exp_alerts:
          - exp_labels: {{instance: h, severity: critical}}
            exp_annotations:
              summary: "1 position(s) without a stop on h"
              description: "trendbotd status shows which; the daemon retries the stop every tick."
      - eval_time: 4m
        alertname: TrendbotdPositionWithoutStop
        exp_alerts: []
      - eval_time: 3m
        alertname: TrendbotdTickStalled
        exp_alerts: []
      - eval_time: 8m
        alertname: TrendbotdTickStalled
        exp_alerts:
          - exp_labels: {{instance: h, severity: critical}}
            exp_annotations:
              summary: "no completed tick on h for 5m 0s"
      - eval_time: 1m
        alertname: TrendbotdHalted
        exp_alerts:
          - exp_labels: {{instance: h, mode: halted, severity: critical}}
            exp_annotations:
              summary: "trendbotd on h is halted by an operator: no new entries"
"""


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) absent")
def test_promtool_fires_the_main_alerts_when_it_should(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yml"
    cases.write_text(PROMTOOL_CASES.format(rules=json.dumps(str(RULES))))
    done = subprocess.run(
        ["promtool", "test", "rules", str(cases)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
