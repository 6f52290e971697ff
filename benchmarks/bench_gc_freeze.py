"""Benchmark: the ``misalign/`` provider with and without freezing the heap after loading.

``-M gc_freeze=true`` (the default) moves the process's long-lived objects (torch, transformers,
Inspect, the loaded model) out of the garbage collector's reach once imports and weights are
loaded (:mod:`inspect_misalign.models._heap`); ``false`` leaves the collector as Python sets it.
The same 96 prompts as ``bench_provider.py``, 32 new tokens, greedy, batch 32 /
``--max-connections 32``; each eval a separate whole process (``inspect eval
benchmarks/bench_task.py --model misalign/default -M gc_freeze=true|false``), the two alternating
``--repeat`` rounds; medians, per-round ratios and whether the completions agree are printed.

Run: ``.venv/bin/python benchmarks/bench_gc_freeze.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ab import BATCH, N_PROMPTS, alternate  # noqa: E402

TOKENS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both settings (median reported)")
    args = parser.parse_args()

    runs = alternate("gc_freeze", ["true", "false"], TOKENS, args.repeat)
    on, off = runs["true"], runs["false"]
    print()
    print(f"{N_PROMPTS} prompts, max {TOKENS} new tokens, greedy, batch {BATCH}, CPU")
    print(f"{'gc_freeze':<10}" + "".join(f"{f'run {i + 1} s':>9}" for i in range(args.repeat))
          + f"{'median s':>10}{'peak RSS MiB':>14}")  # fmt: skip
    for name, arm in (("true", on), ("false", off)):
        cells = "".join(f"{value:>9.1f}" for value in arm.seconds)
        print(f"{name:<10}{cells}{statistics.median(arm.seconds):>10.1f}{arm.peak_rss_mib:>14.0f}")
    per_round = ", ".join(f"{b / a:.2f}x" for a, b in zip(on.seconds, off.seconds, strict=True))
    ratio = statistics.median(off.seconds) / statistics.median(on.seconds)
    print(f"\nfrozen vs not: {ratio:.2f}x faster (medians; per round {per_round})")
    print(f"same completions: {on.completions == off.completions}")


if __name__ == "__main__":
    main()
