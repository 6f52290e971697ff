"""Alternate ``inspect eval`` runs of the bench task through ``misalign/default`` with one model arg
set to each of several values; collect wall seconds, peak RSS and completions per value."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from _timing import bench_env, timed

HERE = Path(__file__).resolve().parent
N_PROMPTS = 96
BATCH = 32


@dataclass
class ArmRuns:
    """What the runs of one value of the model arg measured."""

    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    completions: list[str] = field(default_factory=list)


def completions(log_dir: str) -> list[str]:
    """The completions of the one eval log in ``log_dir``, ordered by sample id."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    [info] = list_eval_logs(log_dir)
    log = read_eval_log(info)
    assert log.samples is not None
    return [sample.output.completion for sample in sorted(log.samples, key=lambda s: str(s.id))]


def alternate(arg: str, values: list[str], tokens: int, repeat: int) -> dict[str, ArmRuns]:
    """Run the eval with ``-M arg=value`` for each value in turn, ``repeat`` rounds."""
    from inspect_misalign.models import ensure_default_model

    ensure_default_model()
    inspect_cli = str(Path(sys.executable).parent / "inspect")
    task = os.path.relpath(HERE / "bench_task.py")
    runs = {value: ArmRuns() for value in values}
    for round_ in range(repeat):
        for value in values:
            logs = tempfile.mkdtemp(prefix=f"bench-{arg}-")
            command = [
                inspect_cli, "eval", task, "--model", "misalign/default",
                "-M", f"batch_size={BATCH}", "-M", f"{arg}={value}",
                "--max-connections", str(BATCH), "--display", "none", "--log-dir", logs,
                "-T", f"n={N_PROMPTS}", "-T", f"max_tokens={tokens}",
            ]  # fmt: skip
            print(f"{tokens} tokens, round {round_ + 1}: {arg}={value} ...", flush=True)
            result = timed(f"{arg}={value}", command, env=bench_env())
            if result.returncode != 0:
                print(result.stdout[-3000:])
                raise SystemExit(f"{arg}={value} failed with exit code {result.returncode}")
            print(f"  {result.seconds:.1f} s, peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
            arm = runs[value]
            arm.seconds.append(result.seconds)
            arm.peak_rss_mib = max(arm.peak_rss_mib, result.peak_rss_mib)
            arm.completions = completions(logs)
            shutil.rmtree(logs, ignore_errors=True)
    return runs
