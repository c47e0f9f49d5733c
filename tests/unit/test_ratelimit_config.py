"""The [ratelimit] table: parsed, checked, and turned into the live governor's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from trendbotd.adapters.budget_file import SharedBudgetFile
from trendbotd.config import load_config
from trendbotd.errors import ConfigError
from trendbotd.trading.compose.exchange import governor_settings
from trendbotd.trading.compose.root import StartupWaiting


def _config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(
        f'[instance]\nruntime_dir = "{tmp_path / "run"}"\n\n'
        '[exchange]\nbase_url = "http://127.0.0.1:8123"\n\n' + table
    )
    return path


def test_settings_and_the_shared_file_beside_the_lock(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "[ratelimit]\nweight_limit = 1200\nshare = 0.5\n"))
    settings = governor_settings(config)
    assert settings.limits.weight_per_window == 1200
    assert settings.limits.share == 0.5
    assert isinstance(settings.store, SharedBudgetFile)
    assert settings.store.path == tmp_path / "run" / "ratelimit-binanceusdm-127.0.0.1_8123.json"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("share = 1.5", "ratelimit.share: must be in [0.1, 1]"),
        ("weight_limit = 100", "ratelimit.weight_limit: must be at least 200"),
        ("share = 0.9\nurgent_share = 0.8", "ratelimit.urgent_share: must be in [share, 1]"),
        ("max_wait_s = 60", "ratelimit.max_wait_s: must be 0..30"),
        ("weight_limt = 10", "ratelimit.weight_limt: unknown key"),
    ],
)
def test_bad_values_name_the_key_and_line(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        load_config(_config(tmp_path, "[ratelimit]\n" + table + "\n"))
    assert str(e.value).startswith(f"{tmp_path / 't.toml'}:")
    assert e.value.exit_code == 78


class _Progress:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def step(self, text: str) -> None:
        raise AssertionError("not a step")

    def waiting(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_executor_pauses_reach_the_startup_progress_only_until_ready() -> None:
    """After READY a pause inside a tick (a held read, a query retry) must not run the
    startup checkpoint: its deadline is long past and a SIGTERM would escape mid-tick."""
    progress = _Progress()
    waiting = StartupWaiting(progress)
    waiting(1.5)
    waiting.ready()
    waiting(9.7)
    assert progress.waits == [1.5]
