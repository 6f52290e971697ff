"""Benchmark: one decode step of the default model with the LM head as ``x @ W.T`` vs ``(W @ x.T).T``.

Batch 32, a 50-token KV cache, fp32 on CPU, ``OMP_WAIT_POLICY=PASSIVE``. The two variants alternate
``--rounds`` times (5 decode steps each) in one process; medians and the ratio are printed. This is
what :func:`inspect_misalign.models._head.transpose_cpu_head` changes in the ``misalign/`` provider.

Run: ``.venv/bin/python benchmarks/bench_head.py [--rounds 10]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BATCH = 32
CONTEXT = 50
STEPS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="alternations of the two variants")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from inspect_misalign.models import ensure_default_model
    from inspect_misalign.models._head import transpose_cpu_head

    model_dir = ensure_default_model()
    plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    fast = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    transpose_cpu_head(fast)
    torch.manual_seed(0)
    prompt = torch.randint(0, plain.config.vocab_size, (BATCH, CONTEXT))
    token = torch.randint(0, plain.config.vocab_size, (BATCH, 1))

    def step_ms(model) -> tuple[float, torch.Tensor]:
        with torch.inference_mode():
            cache = model(input_ids=prompt, use_cache=True, logits_to_keep=1).past_key_values
            start = time.perf_counter()
            for _ in range(STEPS):
                out = model(input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1)
                logits = out.logits
            return (time.perf_counter() - start) / STEPS * 1000, logits

    times: dict[str, list[float]] = {"x @ W.T (transformers)": [], "(W @ x.T).T (misalign/)": []}
    for _ in range(args.rounds):
        a, logits_a = step_ms(plain)
        b, logits_b = step_ms(fast)
        times["x @ W.T (transformers)"].append(a)
        times["(W @ x.T).T (misalign/)"].append(b)
    same = bool((logits_a.argmax(-1) == logits_b.argmax(-1)).all())
    diff = float((logits_a - logits_b).abs().max())
    print(f"decode step, batch {BATCH}, {CONTEXT}-token cache, {args.rounds} alternations x {STEPS} steps")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"  {name:<26} median {medians[name]:6.1f} ms  (min {min(values):.1f}, max {max(values):.1f})")
    plain_ms, fast_ms = medians.values()
    wins = sum(b < a for a, b in zip(*times.values(), strict=True))
    print(
        f"transposed head: {plain_ms / fast_ms:.2f}x faster per step (faster in {wins}/{args.rounds} "
        f"rounds); max |logit diff| {diff:.1e}, same argmax: {same}"
    )


if __name__ == "__main__":
    main()
