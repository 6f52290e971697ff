"""The batching queue, with a fake batch function (no model)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspect_misalign.models._batcher import Batcher, Request


def _recording_batcher(settle: float = 0.02) -> tuple[Batcher[str], list[list[str]], threading.Event]:
    batches: list[list[str]] = []
    gate = threading.Event()

    def run(requests: list[Request[str]]) -> list[str]:
        gate.wait(5)  # hold the first batch until the test has queued the rest
        batches.append([r.payload for r in requests])
        if any(r.payload == "boom" for r in requests):
            raise RuntimeError("batch failed")
        return [f"out:{r.payload}" for r in requests]

    return Batcher(run, settle=settle), batches, gate


def test_each_request_gets_its_own_result() -> None:
    batcher, batches, gate = _recording_batcher()
    futures = [batcher.submit("k", f"p{i}", batch_size=4) for i in range(10)]
    gate.set()
    assert [f.result(5) for f in futures] == [f"out:p{i}" for i in range(10)]
    assert all(len(b) <= 4 for b in batches) and sum(map(len, batches)) == 10


def test_batches_hold_one_key_and_prefer_one_group() -> None:
    batcher, batches, gate = _recording_batcher()
    first = batcher.submit("k", "first", batch_size=2)  # runs alone, held at the gate
    time.sleep(0.1)
    futures = [
        batcher.submit("k", "a1", 2, group="a"),
        batcher.submit("k", "b1", 2, group="b"),
        batcher.submit("other", "x1", 2),
        batcher.submit("k", "a2", 2, group="a"),
    ]
    gate.set()
    for future in [first, *futures]:
        future.result(5)
    assert batches[0] == ["first"]
    assert batches[1] == ["a1", "a2"]  # the full one-adapter batch goes first
    assert ["b1"] in batches and ["x1"] in batches


def test_errors_reach_every_request_of_the_batch() -> None:
    batcher, _, gate = _recording_batcher()
    gate.set()
    futures = [batcher.submit("k", p, batch_size=8) for p in ("ok", "boom")]
    for future in futures:
        with pytest.raises(RuntimeError, match="batch failed"):
            future.result(5)
    assert batcher.submit("k", "later", 8).result(5) == "out:later"  # the worker lives on


def test_no_fixed_wait() -> None:
    batcher, _, gate = _recording_batcher(settle=0.0)
    gate.set()
    start = time.monotonic()
    assert batcher.submit("k", "alone", batch_size=32).result(5) == "out:alone"
    assert time.monotonic() - start < 0.5


def test_exit_waits_for_a_lane_still_working(tmp_path: Path) -> None:
    """A script that exits as soon as its answer arrives lets the lane finish first (a lane stopped
    inside torch's C++ code at interpreter exit aborts the process)."""
    marker = tmp_path / "lane-finished"
    script = f"""
import time
from inspect_misalign.models._batcher import Batcher

def stream(first, take, finish):
    for request in first:
        finish(request, "answer")
    time.sleep(1.0)  # still freeing the batch's tensors, say
    open({str(marker)!r}, "w").write("yes")

batcher = Batcher(lambda requests: [], run_stream=stream, can_stream=lambda key: True)
print(batcher.submit("key", "prompt", 1).result(10))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answer"
    assert marker.read_text() == "yes"
