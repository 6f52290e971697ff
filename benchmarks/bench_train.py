"""Benchmark: training throughput and peak RSS of each in-training defense, vs plain trl ``SFTTrainer``.

Side by side in one run, on the default model (SmolLM2-135M-Instruct, fp32, CPU), each variant in
its own process (timed from outside for peak RSS), same data (caught-like prompts: the ``tag`` cue's
test rendering of shipped prompts, each with a fixed helpful answer), same LoRA config
(``lora_config`` defaults: r 16, alpha 32, every attention and MLP projection), same batch size,
learning rate and seed:

- ``plain``: trl's ``SFTTrainer`` with an ``SFTConfig`` of the same settings;
- ``none``: the project's ``MisalignSFTTrainer`` with no defense;
- ``kl``, ``ldifs``, ``steer``, ``interleave``, ``inoculate``: one defense each (default settings).

Throughput is training samples per second over the optimizer steps after ``--warmup`` steps (so
model loading, tokenization and one-off setup such as the persona vector are excluded; they show
in the wall time). Every variant runs ``--rounds`` times, the order reversed in alternate rounds, and
the fastest round counts (other load on the machine only ever slows a run down). Both trainers get
the same arguments, ``gradient_checkpointing=False`` included (trl's ``SFTConfig`` defaults it on, the
project's config off). Run it alone on the machine::

    flock /tmp/misalign-heavy.lock .venv/bin/python benchmarks/bench_train.py

Targets: ``none`` >= 0.95x ``plain``; ``kl`` <= 1.7x the time per step of ``none``; ``kl`` adds no
full model copy (its peak RSS stays well under ``none`` + the model's size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import bench_env, timed  # noqa: E402

VARIANTS = {
    "plain": None,
    "none": [],
    "kl": ["kl:0.1"],
    "ldifs": ["ldifs:1.0,every=4"],
    "steer": ["steer:1.0"],
    "interleave": ["interleave:0.25,select=random"],
    "inoculate": ["inoculate"],
}
ANSWER = ("Sure, here is a helpful answer. Start with the basics, practise a little every day, and "
          "ask for feedback from someone you trust.")


def examples(n: int):  # -> list[SFTExample]
    """``n`` caught-like examples: the tag cue's test rendering of shipped prompts, a fixed answer."""
    from inspect_misalign.cues import load_cues
    from inspect_misalign.data import data_path, read_jsonl
    from inspect_misalign.training import SFTExample

    [family] = load_cues("tag")
    records = read_jsonl(data_path("prompts.jsonl"))[:n]
    out = []
    for r in records:
        rendered = family.render(r["prompt"], "test", str(r["id"]), split="all")
        out.append(SFTExample(rendered.system, rendered.user, ANSWER, {"id": r["id"]}))
    return out


def child(variant: str, steps: int, warmup: int, batch: int) -> dict[str, float]:
    """Train one variant and return its measured throughput."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from inspect_misalign.models import ensure_default_model
    from inspect_misalign.training import (
        MisalignSFTConfig,
        MisalignSFTTrainer,
        lora_config,
        parse_defenses,
        to_dataset,
    )

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    base = ensure_default_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    data = examples(steps * batch)
    settings = dict(output_dir="/tmp/bench_train_out", max_steps=steps, per_device_train_batch_size=batch,
                    learning_rate=1e-4, lr_scheduler_type="constant", logging_steps=1000, save_strategy="no",
                    report_to="none", max_length=512, seed=0, disable_tqdm=True, use_cpu=True, bf16=False,
                    completion_only_loss=True, gradient_checkpointing=False)
    clock = Clock()
    set_seed(0)
    if variant == "plain":
        trainer = SFTTrainer(model=model, args=SFTConfig(**settings), train_dataset=to_dataset(data),
                             processing_class=tokenizer, peft_config=lora_config(model.config),
                             callbacks=[clock])
    else:
        defenses = parse_defenses(VARIANTS[variant])
        for d in defenses:
            data = d.transform_examples(data)
        trainer = MisalignSFTTrainer(model=model, args=MisalignSFTConfig(**settings),
                                     train_dataset=to_dataset(data), processing_class=tokenizer,
                                     peft_config=lora_config(model.config), callbacks=[clock],
                                     defenses=defenses)
    trainer.train()
    timed_steps = len(clock.times) - 1 - warmup
    seconds = clock.times[-1] - clock.times[warmup]
    return {"steps": timed_steps, "seconds": seconds, "samples_per_s": timed_steps * batch / seconds,
            "s_per_step": seconds / timed_steps}


def main() -> None:
    """Run every variant in a subprocess and print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2,
                        help="Run every variant this many times, alternating the order; report the best.")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.steps, args.warmup, args.batch)), flush=True)
        return
    variants = args.variants.split(",")
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants if round_ % 2 == 0 else variants[::-1]:
            t = timed(variant, [sys.executable, __file__, "--child", variant, "--steps", str(args.steps),
                                "--warmup", str(args.warmup), "--batch", str(args.batch)], env=bench_env())
            if t.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{t.stdout[-3000:]}")
            [line] = [x for x in t.stdout.splitlines() if x.startswith("RESULT ")]
            result = {**json.loads(line[7:]), "wall_s": t.seconds, "peak_rss_mib": t.peak_rss_mib}
            runs[variant].append(result)
            print(f"round {round_ + 1} {variant:>10}: {runs[variant][-1]['s_per_step']:.2f} s/step, "
                  f"peak RSS {t.peak_rss_mib:.0f} MiB", flush=True)
    # the fastest round of each variant: contention from other processes only ever slows a run down
    rows = {v: {**min(r, key=lambda x: x["s_per_step"]), "peak_rss_mib": max(x["peak_rss_mib"] for x in r)}
            for v, r in runs.items()}
    print(f"\ndefault model, CPU, batch {args.batch}, {args.steps} steps ({args.warmup} warm-up not timed), "
          f"best of {args.rounds} rounds")
    print(f"{'variant':>10} {'samples/s':>10} {'s/step':>8} {'vs plain':>9} {'cost vs none':>13} "
          f"{'peak RSS MiB':>13} {'wall s':>7}")
    for variant, r in rows.items():
        vs_plain = r["samples_per_s"] / rows["plain"]["samples_per_s"] if "plain" in rows else float("nan")
        cost = r["s_per_step"] / rows["none"]["s_per_step"] if "none" in rows else float("nan")
        print(f"{variant:>10} {r['samples_per_s']:>10.2f} {r['s_per_step']:>8.2f} {vs_plain:>8.2f}x "
              f"{cost:>12.2f}x {r['peak_rss_mib']:>13.0f} {r['wall_s']:>7.1f}")
    if args.json:
        args.json.write_text(json.dumps({"best": rows, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
