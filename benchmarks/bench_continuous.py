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
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import bench_env, timed  # noqa: E402

N_PROMPTS = 96
BATCH = 32


def _completions(log_dir: str) -> list[str]:
    from inspect_ai.log import list_eval_logs, read_eval_log

    [info] = list_eval_logs(log_dir)
    log = read_eval_log(info)
    assert log.samples is not None
    return [sample.output.completion for sample in sorted(log.samples, key=lambda s: str(s.id))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both modes (median reported)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 160], help="max new tokens settings")
    args = parser.parse_args()

    from inspect_misalign.models import ensure_default_model

    ensure_default_model()
    inspect_cli = str(Path(sys.executable).parent / "inspect")
    task = os.path.relpath(HERE / "bench_task.py")
    rows = []
    for tokens in args.tokens:
        seconds: dict[str, list[float]] = {"true": [], "false": []}
        rss: dict[str, float] = {"true": 0.0, "false": 0.0}
        outputs: dict[str, list[str]] = {}
        for round_ in range(args.repeat):
            for mode in ("true", "false"):
                logs = tempfile.mkdtemp(prefix="bench-continuous-")
                command = [
                    inspect_cli, "eval", task, "--model", "misalign/default",
                    "-M", f"batch_size={BATCH}", "-M", f"continuous={mode}",
                    "--max-connections", str(BATCH), "--display", "none", "--log-dir", logs,
                    "-T", f"n={N_PROMPTS}", "-T", f"max_tokens={tokens}",
                ]  # fmt: skip
                print(f"{tokens} tokens, round {round_ + 1}: continuous={mode} ...", flush=True)
                result = timed(f"continuous={mode}", command, env=bench_env())
                if result.returncode != 0:
                    print(result.stdout[-3000:])
                    raise SystemExit(f"continuous={mode} failed with exit code {result.returncode}")
                print(f"  {result.seconds:.1f} s, peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
                seconds[mode].append(result.seconds)
                rss[mode] = max(rss[mode], result.peak_rss_mib)
                outputs[mode] = _completions(logs)
                shutil.rmtree(logs, ignore_errors=True)
        on, off = statistics.median(seconds["true"]), statistics.median(seconds["false"])
        same = outputs["true"] == outputs["false"]
        rows.append((tokens, on, off, rss["true"], rss["false"], same))

    print()
    print(f"{N_PROMPTS} prompts, greedy, batch {BATCH}, CPU; medians of {args.repeat} round(s)")
    header = ("max tokens", "continuous s", "batched s", "speed-up", "RSS MiB on/off", "same")
    print(f"{header[0]:>10} {header[1]:>13} {header[2]:>10} {header[3]:>9} {header[4]:>15} {header[5]}")
    for tokens, on, off, rss_on, rss_off, same in rows:
        ratio = f"{off / on:.2f}x"
        print(f"{tokens:>10} {on:>13.1f} {off:>10.1f} {ratio:>9} {rss_on:>7.0f}/{rss_off:<7.0f} {same}")


if __name__ == "__main__":
    main()
