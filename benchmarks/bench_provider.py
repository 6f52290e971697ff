"""Benchmark: the ``misalign/`` provider vs Inspect's ``hf/`` vs a plain batched-generate script.

Same 96 short prompts, at most 32 new tokens, greedy, batch 32, ``OMP_WAIT_POLICY=PASSIVE``.
Each variant runs as a separate whole process, timed from outside (wall clock, peak RSS):

a) plain: a script that loads the converted default checkpoint and calls ``model.generate``
   on batches of 32 left-padded prompts;
b) ``inspect eval benchmarks/bench_task.py --model misalign/default -M batch_size=32
   --max-connections 32``;
c) the same with ``--model hf/<converted dir> -M do_sample=false -M batch_size=32``.

Run: ``.venv/bin/python benchmarks/bench_provider.py`` (converts the default model first if
needed). Targets: misalign at least 1.3x faster than hf/, and at least 0.9x the plain script.
"""

from __future__ import annotations

import argparse
import shutil
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
    args = parser.parse_args()
    if args.variant == "plain":
        plain(args.model_dir)
        return

    from inspect_misalign.models import ensure_default_model

    model_dir = str(ensure_default_model())
    python = sys.executable
    inspect_cli = str(Path(python).parent / "inspect")
    task = str(HERE / "bench_task.py")
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
    ]  # fmt: skip
    results: list[Timing] = []
    for name, command in variants:
        print(f"running {name} ...", flush=True)
        result = timed(name, command, env=bench_env())
        if result.returncode != 0:
            print(result.stdout[-3000:])
            raise SystemExit(f"{name} failed with exit code {result.returncode}")
        results.append(result)
    shutil.rmtree(logs, ignore_errors=True)
    report(results)


def report(results: list[Timing]) -> None:
    plain_t, mis, hf = results
    print()
    print(f"{N_PROMPTS} prompts, max {MAX_TOKENS} new tokens, greedy, batch {BATCH}, CPU")
    print(f"{'variant':<24}{'seconds':>10}{'peak RSS MiB':>15}")
    for result in results:
        print(f"{result.name:<24}{result.seconds:>10.1f}{result.peak_rss_mib:>15.0f}")
    print()
    print(f"misalign vs hf/  : {hf.seconds / mis.seconds:.2f}x faster (target >= 1.3x)")
    print(f"misalign vs plain: {plain_t.seconds / mis.seconds:.2f}x plain speed (target >= 0.9x)")


if __name__ == "__main__":
    main()
