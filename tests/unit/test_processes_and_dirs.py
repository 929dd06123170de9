"""Temporary metric directories are cleaned up; multiprocessing's helpers are not instrumented."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from otel_gatewayz._metrics.prometheus import sweep_stale_dirs
from otel_gatewayz._setup.processes import is_multiprocessing_helper


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_directories_go_and_live_or_new_ones_stay(tmp_path):
    dead, live = tmp_path / "otel_gatewayz-metrics-dead", tmp_path / "otel_gatewayz-metrics-live"
    fresh, old = tmp_path / "otel_gatewayz-metrics-fresh", tmp_path / "otel_gatewayz-metrics-old"
    other = tmp_path / "someone-elses"
    for path in (dead, live, fresh, old, other):
        path.mkdir()
    (dead / "owner.pid").write_text(str(_dead_pid()))
    (dead / f"{_dead_pid()}-abcd.json").write_text("{}")
    (live / "owner.pid").write_text(str(_dead_pid()))
    (live / f"{os.getpid()}-abcd.journal0").write_bytes(b"")  # a worker still alive (its journal is enough)
    (dead / f"{_dead_pid()}-abcd.journal0").write_bytes(b"")
    os.utime(old, (time.time() - 3600, time.time() - 3600))

    sweep_stale_dirs(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["otel_gatewayz-metrics-live", "otel_gatewayz-metrics-fresh", "someone-elses"]
    )


def test_the_resource_tracker_is_a_helper_and_spawned_workers_are_not():
    python = sys.executable
    tracker = [python, "-c", "from multiprocessing.resource_tracker import main;main(5)"]
    worker = [
        python,
        "-c",
        "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=6, pipe_handle=8)",
        "--multiprocessing-fork",
    ]
    assert is_multiprocessing_helper(tracker)
    assert not is_multiprocessing_helper(worker)
    assert not is_multiprocessing_helper([python, "-m", "uvicorn", "app:app"])
