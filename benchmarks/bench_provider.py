"""Benchmark: the ``misalign/`` provider vs Inspect's ``hf/`` vs a plain batched-generate script.

Same 96 short prompts, at most 32 new tokens, greedy, batch 32, ``OMP_WAIT_POLICY=PASSIVE``.
Each variant runs as a separate whole process, timed from outside (wall clock, peak RSS):

a) plain: a script that loads the converted default checkpoint and calls ``model.generate``
   on batches of 32 left-padded prompts;
b) ``inspect eval benchmarks/bench_task.py --model misalign/default -M batch_size=32
   --max-connections 32``;
c) the same with ``--model hf/<converted dir> -M do_sample=false -M batch_size=32``;
d) (b) with ``-M lanes=1``: one worker thread with two intra-op threads instead of the default
   two lanes of one thread each (each running batches of up to 16).

Run: ``.venv/bin/python benchmarks/bench_provider.py [--repeat N]`` (converts the default model
first if needed; ``--repeat`` runs N interleaved rounds and reports medians). Targets: misalign at
least 1.3x faster than hf/, and at least 0.9x the plain script.
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

from _timing import Timing, bench_env, timed  # noqa: E402

N_PROMPTS = 96
MAX_TOKENS = 32
BATCH = 32


def plain(model_dir: str) -> None:
    """Variant (a): batched ``model.generate`` with transformers only."""
    import torch
    from bench_task import prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts(N_PROMPTS)
    ]
    completions = []
    for start in range(0, len(texts), BATCH):
        batch = tokenizer(
            texts[start : start + BATCH],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=MAX_TOKENS, do_sample=False)
        completions += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"completions: {len(completions)}; first: {completions[0]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["plain"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of the three variants, interleaved (median reported)"
    )
    args = parser.parse_args()
    if args.variant == "plain":
        plain(args.model_dir)
        return

    from inspect_misalign.models import ensure_default_model

    model_dir = str(ensure_default_model())
    python = sys.executable
    inspect_cli = str(Path(python).parent / "inspect")
    # inspect resolves task files relative to the working directory (absolute paths fail)
    task = os.path.relpath(HERE / "bench_task.py")
    logs = tempfile.mkdtemp(prefix="bench-provider-logs-")
    common = [
        "--max-connections", str(BATCH), "--display", "none", "--log-dir", logs,
        "-T", f"n={N_PROMPTS}", "-T", f"max_tokens={MAX_TOKENS}",
    ]  # fmt: skip
    variants = [
        ("plain generate (a)", [python, __file__, "--variant", "plain", "--model-dir", model_dir]),
        (
            "misalign/default (b)",
            [inspect_cli, "eval", task, "--model", "misalign/default",
             "-M", f"batch_size={BATCH}", *common],
        ),
        (
            "hf/<converted> (c)",
            [inspect_cli, "eval", task, "--model", f"hf/{model_dir}",
             "-M", "do_sample=false", "-M", f"batch_size={BATCH}", *common],
        ),
        (
            "misalign, lanes=1 (d)",
            [inspect_cli, "eval", task, "--model", "misalign/default",
             "-M", f"batch_size={BATCH}", "-M", "lanes=1", *common],
        ),
    ]  # fmt: skip
    rounds: list[list[Timing]] = []
    for round_ in range(args.repeat):
        results: list[Timing] = []
        for name, command in variants:
            print(f"round {round_ + 1}: running {name} ...", flush=True)
            result = timed(name, command, env=bench_env())
            if result.returncode != 0:
                print(result.stdout[-3000:])
                raise SystemExit(f"{name} failed with exit code {result.returncode}")
            print(f"  {result.seconds:.1f} s, peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
            results.append(result)
        rounds.append(results)
    shutil.rmtree(logs, ignore_errors=True)
    report(rounds)


def report(rounds: list[list[Timing]]) -> None:
    """Print each round's seconds, the median and the peak RSS per variant, and the ratios."""
    print()
    print(f"{N_PROMPTS} prompts, max {MAX_TOKENS} new tokens, greedy, batch {BATCH}, CPU")
    names = [result.name for result in rounds[0]]
    runs = " ".join(f"{f'run {i + 1} s':>9}" for i in range(len(rounds)))
    print(f"{'variant':<24}{runs} {'median s':>9}{'peak RSS MiB':>14}")
    medians = []
    for index, name in enumerate(names):
        seconds = [results[index].seconds for results in rounds]
        rss = max(results[index].peak_rss_mib for results in rounds)
        medians.append(statistics.median(seconds))
        cells = " ".join(f"{value:>9.1f}" for value in seconds)
        print(f"{name:<24}{cells} {medians[-1]:>9.1f}{rss:>14.0f}")
    plain_s, mis_s, hf_s, one_lane_s = medians
    print()
    per_round = ", ".join(f"{r[2].seconds / r[1].seconds:.2f}x" for r in rounds)
    print(f"misalign vs hf/  : {hf_s / mis_s:.2f}x faster (medians; per round {per_round}; target >= 1.3x)")
    per_round = ", ".join(f"{r[0].seconds / r[1].seconds:.2f}x" for r in rounds)
    print(
        f"misalign vs plain: {plain_s / mis_s:.2f}x plain speed (medians; per round {per_round}; "
        "target >= 0.9x)"
    )
    per_round = ", ".join(f"{r[3].seconds / r[1].seconds:.2f}x" for r in rounds)
    print(f"lanes auto vs 1  : {one_lane_s / mis_s:.2f}x faster (medians; per round {per_round})")


if __name__ == "__main__":
    main()
