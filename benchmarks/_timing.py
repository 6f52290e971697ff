"""Run a command as a separate process; report wall seconds and peak RSS (MiB).

Linux carries a process's peak RSS across ``fork`` + ``exec``: a child started straight from a
benchmark parent that has loaded a model would report at least the parent's footprint. So the
command is started by a tiny launcher (this file run as a script, a bare Python of ~10 MiB),
which waits for it with ``os.wait4`` and writes the command's own ``ru_maxrss`` to a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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
    """Run ``command`` through the launcher; wall seconds from here, peak RSS of the command itself."""
    fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
    os.close(fd)
    launcher = [sys.executable, os.path.abspath(__file__), rss_file, *command]
    try:
        start = time.monotonic()
        proc = subprocess.run(launcher, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.monotonic() - start
        with open(rss_file) as f:
            text = f.read().strip()
        rss_kib = float(text) if text else float("nan")
    finally:
        os.unlink(rss_file)
    return Timing(name, seconds, rss_kib / 1024, proc.returncode, proc.stdout)


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for benchmark children: passive OpenMP waits, no progress noise."""
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra)
    return env


def _launch(rss_file: str, command: list[str]) -> int:
    """Run ``command``, write its peak RSS (KiB) to ``rss_file``, return its exit code."""
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    with open(rss_file, "w") as f:
        f.write(str(usage.ru_maxrss))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1], sys.argv[2:]))
