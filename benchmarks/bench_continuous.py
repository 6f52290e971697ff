"""Benchmark: continuous batching vs one ``generate`` call per batch in the ``misalign/`` provider.

The same 96 prompts as ``bench_provider.py``, greedy, batch 32 / ``--max-connections 32``, at two
generation limits: 64 new tokens (most answers hit the limit) and 160 (answers of 15 to 160
tokens, so rows of a fixed batch wait for its longest one). Each eval is a separate whole process
(``inspect eval benchmarks/bench_task.py --model misalign/default -M continuous=true|false``);
the two modes alternate, ``--repeat`` rounds (medians reported). The completions of the two
modes are compared too: greedy decoding must give the same answers.

Run: ``.venv/bin/python benchmarks/bench_continuous.py [--repeat N] [--tokens 64 160]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ab import BATCH, N_PROMPTS, alternate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both modes (median reported)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 160], help="max new tokens settings")
    args = parser.parse_args()

    rows = []
    for tokens in args.tokens:
        runs = alternate("continuous", ["true", "false"], tokens, args.repeat)
        on, off = runs["true"], runs["false"]
        same = on.completions == off.completions
        rows.append(
            (tokens, statistics.median(on.seconds), statistics.median(off.seconds),
             on.peak_rss_mib, off.peak_rss_mib, same)
        )  # fmt: skip

    print()
    print(f"{N_PROMPTS} prompts, greedy, batch {BATCH}, CPU; medians of {args.repeat} round(s)")
    header = ("max tokens", "continuous s", "batched s", "speed-up", "RSS MiB on/off", "same")
    print(f"{header[0]:>10} {header[1]:>13} {header[2]:>10} {header[3]:>9} {header[4]:>15} {header[5]}")
    for tokens, on_s, off_s, rss_on, rss_off, same in rows:
        ratio = f"{off_s / on_s:.2f}x"
        print(f"{tokens:>10} {on_s:>13.1f} {off_s:>10.1f} {ratio:>9} {rss_on:>7.0f}/{rss_off:<7.0f} {same}")


if __name__ == "__main__":
    main()
