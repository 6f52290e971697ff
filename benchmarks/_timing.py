"""Run a command as a separate process; report wall seconds and peak RSS (MiB)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Timing:
    name: str
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str


def timed(name: str, command: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run ``command`` and wait for it with ``os.wait4`` to get its own resource usage."""
    start = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Timing(name, seconds, usage.ru_maxrss / 1024, proc.returncode, output)


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for benchmark children: passive OpenMP waits, no progress noise."""
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra)
    return env
