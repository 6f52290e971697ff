"""Benchmark: two batches one after the other on 2 intra-op threads vs as two 1-thread lanes.

The default model, two batches of 32 of the ``bench_provider`` prompts, 32 new tokens each
(``min_new_tokens=32``, so both sides decode the same number of steps), greedy, transformers'
``generate`` on one loaded model, ``OMP_WAIT_POLICY=PASSIVE``. Each side runs as its own process
(torch's thread settings are per process), alternating for ``--repeat`` rounds:

- sequential: ``torch.set_num_threads(2)``, batch 1 then batch 2;
- lanes: two Python threads, each with one intra-op thread
  (:func:`inspect_misalign.models._threads.lane_threads`), one batch each, at the same time.

This is what the provider's ``-M lanes`` does with whole batches. Run:
``.venv/bin/python benchmarks/bench_lanes.py [--repeat N]``; it prints each side's seconds, the ratio
and whether the completions match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BATCH = 32
MAX_TOKENS = 32


def child(mode: str, model_dir: str) -> None:
    """Time one side in this process; print seconds and a digest of the completions as JSON."""
    import torch  # bench_env set OMP_WAIT_POLICY=PASSIVE for this process
    from bench_task import prompts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inspect_misalign.models._threads import lane_threads

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    chats = [[{"role": "user", "content": p}] for p in prompts(2 * BATCH)]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    outputs: dict[int, list[str]] = {}

    def generate(index: int) -> None:
        batch = tokenizer(texts[index * BATCH : (index + 1) * BATCH], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=MAX_TOKENS, min_new_tokens=MAX_TOKENS, do_sample=False
            )
        new = out[:, batch["input_ids"].shape[1] :]
        outputs[index] = tokenizer.batch_decode(new, skip_special_tokens=True)

    def lane(index: int) -> None:
        lane_threads(1)
        generate(index)

    generate(0)  # warm-up (first-call allocations), not timed
    started = time.perf_counter()
    if mode == "sequential":
        generate(0)
        generate(1)
    else:
        lanes = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
        for thread in lanes:
            thread.start()
        for thread in lanes:
            thread.join()
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(json.dumps([outputs[0], outputs[1]]).encode()).hexdigest()[:12]
    print("RESULT " + json.dumps({"seconds": seconds, "digest": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["sequential", "lanes"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (median reported)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model_dir)
        return
    from _timing import bench_env

    from inspect_misalign.models import ensure_default_model

    model_dir = str(ensure_default_model())
    seconds: dict[str, list[float]] = {"sequential": [], "lanes": []}
    digests: dict[str, set[str]] = {"sequential": set(), "lanes": set()}
    for round_ in range(args.repeat):
        for mode in ("sequential", "lanes"):
            command = [sys.executable, __file__, "--child", mode, "--model-dir", model_dir]
            done = subprocess.run(command, capture_output=True, text=True, env=bench_env(), check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
            result = json.loads(lines[-1].removeprefix("RESULT "))
            seconds[mode].append(result["seconds"])
            digests[mode].add(result["digest"])
            print(f"round {round_ + 1}: {mode:<10} {result['seconds']:.1f} s", flush=True)
    sequential, lanes = (statistics.median(seconds[m]) for m in ("sequential", "lanes"))
    pairs = zip(seconds["sequential"], seconds["lanes"], strict=True)
    per_round = ", ".join(f"{s / t:.2f}x" for s, t in pairs)
    print()
    print(f"2 batches of {BATCH}, {MAX_TOKENS} new tokens, default model, CPU")
    print(f"sequential, 2 threads : median {sequential:.1f} s")
    print(f"two 1-thread lanes    : median {lanes:.1f} s")
    print(f"lanes vs sequential   : {sequential / lanes:.2f}x faster (per round {per_round})")
    same = len(digests["sequential"] | digests["lanes"]) == 1
    print(f"same completions      : {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
