"""Benchmark: the provider's continuous batching vs one ``generate`` per batch, or vs transformers' own.

The same 96 prompts as ``bench_provider.py``, greedy, batch 32 / ``--max-connections 32``, at two
generation limits: 64 new tokens (most answers hit the limit) and 160 (answers of 15 to 160
tokens, so rows of a fixed batch wait for its longest one). Each eval is a separate whole process
(``inspect eval benchmarks/bench_task.py --model misalign/default -M continuous=true|false``);
the two modes alternate, ``--repeat`` rounds (medians reported). The completions of the two
modes are compared too: greedy decoding must give the same answers.

``--vs transformers`` compares the provider's hand-built engine (``_continuous.py`` +
``_kvcache.py``) with transformers' own continuous batching (``model.generate_batch``: its
``ContinuousBatchingManager`` with a paged KV cache) on the same prompts and model, each arm a
separate process that times only the decoding (see ``benchmarks/_engines.py``): ``hand`` (the
provider, ``-M continuous=true``, its default lanes), ``hand-1lane`` (``-M lanes=1``) and
``transformers``. The greedy completions of the arms are compared with ``hand``'s.

Run: ``.venv/bin/python benchmarks/bench_continuous.py [--vs batched|transformers] [--repeat N]
[--tokens 64 160]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ab import BATCH, N_PROMPTS, alternate  # noqa: E402
from _timing import bench_env, timed  # noqa: E402

ENGINE_ARMS = ["hand", "hand-1lane", "transformers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both modes (median reported)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 160], help="max new tokens settings")
    parser.add_argument("--vs", choices=["batched", "transformers"], default="batched", help="compare with")
    args = parser.parse_args()
    if args.vs == "transformers":
        engines(args.tokens, args.repeat)
        return

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


def engines(token_settings: list[int], repeat: int) -> None:
    """The hand-built engine vs transformers' continuous batching, arms alternating per round."""
    import json
    import tempfile

    from inspect_misalign.models import ensure_default_model

    ensure_default_model()
    script = str(Path(__file__).resolve().parent / "_engines.py")
    rows = []
    for tokens in token_settings:
        seconds: dict[str, list[float]] = {arm: [] for arm in ENGINE_ARMS}
        cpu: dict[str, list[float]] = {arm: [] for arm in ENGINE_ARMS}
        rss: dict[str, float] = dict.fromkeys(ENGINE_ARMS, 0.0)
        texts: dict[str, list[str]] = {}
        for round_ in range(repeat):
            for arm in ENGINE_ARMS:
                out = tempfile.mktemp(prefix=f"bench-engine-{arm}-", suffix=".json")
                result = timed(arm, [sys.executable, script, arm, str(tokens), out], env=bench_env())
                if result.returncode != 0:
                    print(result.stdout[-3000:])
                    raise SystemExit(f"{arm} failed with exit code {result.returncode}")
                data = json.loads(Path(out).read_text())
                Path(out).unlink()
                seconds[arm].append(data["seconds"])
                cpu[arm].append(data["cpu_seconds"])
                rss[arm] = max(rss[arm], result.peak_rss_mib)
                texts[arm] = data["completions"]
                print(f"{tokens} tokens, round {round_ + 1}: {arm} {data['seconds']:.1f} s (CPU "
                      f"{data['cpu_seconds']:.1f} s), peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
        same = {arm: sum(map(str.__eq__, texts[arm], texts["hand"])) for arm in ENGINE_ARMS}
        rows.append((tokens, {arm: statistics.median(seconds[arm]) for arm in ENGINE_ARMS},
                     {arm: statistics.median(cpu[arm]) for arm in ENGINE_ARMS}, rss, same))  # fmt: skip

    print()
    print(f"{N_PROMPTS} prompts, greedy, at most {BATCH} rows at once, CPU; decoding only, medians of "
          f"{repeat} round(s); wall s (CPU s of all threads)")  # fmt: skip
    print(f"{'max tokens':>10} " + " ".join(f"{arm:>18}" for arm in ENGINE_ARMS)
          + f" {'transformers/hand':>18} {'transformers/1lane':>19} {'same as hand':>13}")  # fmt: skip
    for tokens, wall, cpu_s, _rss, same in rows:
        cells = " ".join(f"{f'{wall[arm]:.1f} ({cpu_s[arm]:.1f})':>18}" for arm in ENGINE_ARMS)
        ratio = wall["transformers"] / wall["hand"]
        ratio_1 = wall["transformers"] / wall["hand-1lane"]
        print(f"{tokens:>10} {cells} {ratio:>17.2f}x {ratio_1:>18.2f}x "
              f"{same['transformers']:>5}/{N_PROMPTS} {same['hand-1lane']:>3}/{N_PROMPTS}")  # fmt: skip
    print("peak RSS MiB (last setting): " + ", ".join(f"{arm} {rows[-1][3][arm]:.0f}" for arm in ENGINE_ARMS))


if __name__ == "__main__":
    main()
