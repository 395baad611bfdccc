"""Per-stage timing (storyclust.timing) and the `stages:` line that -v prints."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from wordhash import WordHashEmbedder

from storyclust import cli as cli_mod
from storyclust import timing
from storyclust.settings import EmbedOptions

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


@pytest.fixture(autouse=True)
def fresh():
    timing.reset()
    yield
    timing.reset()


def test_stages_add_up_per_name_and_nest_in_the_summary():
    with timing.stage("embed"):
        with timing.stage("embed/whole text"):
            time.sleep(0.02)
        with timing.stage("embed/lead"):
            time.sleep(0.01)
    with timing.stage("cluster"):
        pass
    with timing.stage("embed"):  # a second piece of the same stage adds to it
        time.sleep(0.01)
    seconds = timing.stage_seconds()
    assert list(seconds) == ["embed", "embed/whole text", "embed/lead", "cluster"]
    assert seconds["embed"] >= seconds["embed/whole text"] + seconds["embed/lead"] + 0.01
    line = timing.summary_line()
    assert line.startswith("stages: embed ") and "(whole text " in line and ", lead " in line
    parsed = timing.parse_summary(line)
    assert set(parsed) == set(seconds)
    assert all(abs(parsed[k] - round(seconds[k], 2)) < 0.006 for k in seconds)


def test_a_stage_that_raises_is_still_counted():
    with pytest.raises(ValueError):
        with timing.stage("ingest"):
            raise ValueError("bad input")
    assert "ingest" in timing.stage_seconds()
    timing.reset()
    assert timing.summary_line() == "stages: none"


@pytest.mark.parametrize("state", [False, True])
def test_verbose_runs_log_their_own_stages(tmp_path, monkeypatch, state):
    monkeypatch.setenv("STORYCLUST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(EmbedOptions, "load", lambda self: WordHashEmbedder())
    args = ["-v", "run", str(SAMPLES / "wires")] + (["--state", str(tmp_path / "s.db")] if state else [])
    with timing.stage("left over from an earlier command"):
        pass
    result = CliRunner().invoke(cli_mod.cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if "stages:" in x)
    stages = timing.parse_summary(line)
    expected = ({"take in", "load model", "fold copies", "embed", "cluster", "apply", "write"} if state else
                {"ingest", "load model", "language means", "fold copies", "embed", "cluster", "stories", "write"})
    assert expected <= set(stages) and "left over from an earlier command" not in stages
    assert {"embed/whole text", "embed/lead"} <= set(stages)
