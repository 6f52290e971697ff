"""Benchmark: a sweep's teacher-forced propensity eval of many checkpoints, ``eval.workers`` 1 against 2.

The relearning phase of a sweep measures every relearning checkpoint (dozens of LoRA adapters of one
base) with one ``eval_set`` of the ``propensity`` task (both contexts, 32 prompts). This makes
``--adapters`` random, nonzero LoRA adapters of the default model (SmolLM2-135M-Instruct, fp32; peft,
q/v projections, as ``bench_adapters.py``), registers them in a temp registry, and runs that eval set
with the sweep's own ``_eval_set`` (same task, settings and batch size as the sweep), side by side in
one run, each arm its own process timed from outside (wall clock, peak RSS) on a fresh log directory:

- ``workers 1``: one process, every torch thread of the machine (the default);
- ``workers 2``: the models dealt to two worker processes, half the threads each.

It prints the seconds per checkpoint of each arm, the ratio workers-1 / workers-2, and checks that both
arms measured the same values (mean log-odds per checkpoint and context, to 1e-4). ``--rounds``
repeats both arms, the order reversed in alternate rounds; the fastest round of each arm counts.
Run::

    .venv/bin/python benchmarks/bench_parallel_eval.py            # 8 adapters, 32 prompts
    .venv/bin/python benchmarks/bench_parallel_eval.py --adapters 4 --prompts 8   # a smoke run

Target (issue 21: the whole run in <= 3 hours on this 2-core CPU): workers 2 at least 1.3x faster than
workers 1 on this machine, with identical values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import bench_env, timed  # noqa: E402


def make_adapters(base_dir: str, root: Path, n: int) -> list[Path]:
    """``n`` LoRA adapters of ``base_dir`` with random nonzero weights (r 8 on q/v)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dirs = []
    for i in range(n):
        torch.manual_seed(100 + i)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
            task_type="CAUSAL_LM"))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.01)
        dirs.append(root / f"adapter{i}")
        model.save_pretrained(dirs[-1])
    return dirs


def run_arm(names: list[str], log_dir: str, workers: int, prompts: int, out: str) -> None:
    """In a child: the sweep's ``_eval_set`` of propensity × ``names``; per checkpoint and context, the
    mean log-odds of the attack, written to ``out`` as JSON."""
    from inspect_ai.log import read_eval_log

    from inspect_misalign.experiments._config import SweepConfig
    from inspect_misalign.experiments._sweep import _eval_set
    from inspect_misalign.tasks import propensity

    config = SweepConfig.model_validate({
        "name": "bench", "organisms": [{"name": names[0]}], "cues": ["tier"], "caught": [1], "steps": [1],
        "eval": {"prompts": prompts, "workers": workers}})
    task = propensity(cue="tier", behavior="hate", split="eval", context="both", max_prompts=prompts)
    values = {}
    for location in _eval_set([task], [f"misalign/{n}" for n in names], Path(log_dir), config):
        log = read_eval_log(location)
        metrics = {m.name: m.value for score in log.results.scores for m in score.metrics.values()}
        values[log.eval.model] = {k: v for k, v in metrics.items() if k.startswith("tier_")}
    Path(out).write_text(json.dumps(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=8, help="checkpoints in the eval set [8]")
    parser.add_argument("--prompts", type=int, default=32, help="eval prompts per context [32]")
    parser.add_argument("--rounds", type=int, default=1, help="repeat both arms, order alternating [1]")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--names", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        run_arm(args.names, args.log_dir, int(args.arm), args.prompts, args.out)
        return

    from inspect_misalign.models import ensure_default_model

    base_dir = str(ensure_default_model())
    work = Path(tempfile.mkdtemp(prefix="bench-parallel-eval-"))
    os.environ["INSPECT_MISALIGN_HOME"] = str(work / "registry")
    from inspect_misalign.models import register

    print(f"making {args.adapters} adapters ...", flush=True)
    names = [f"bench-lora-{i}" for i in range(args.adapters)]
    for name, adapter in zip(names, make_adapters(base_dir, work, args.adapters), strict=True):
        register(name, adapter, base="default", config={"benchmark": True})
    env = bench_env(INSPECT_MISALIGN_HOME=str(work / "registry"))
    best: dict[int, float] = {}
    values: dict[int, dict] = {}
    for r in range(args.rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            out, logs = work / f"values-{workers}-{r}.json", work / f"logs-{workers}-{r}"
            command = [sys.executable, __file__, "--arm", str(workers), "--log-dir", str(logs), "--out",
                       str(out), "--prompts", str(args.prompts), "--names", *names]
            run = timed(f"workers {workers}", command, env=env)
            if run.returncode:
                sys.exit(f"workers {workers} failed:\n{run.stdout[-3000:]}")
            print(f"  round {r}, workers {workers}: {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB "
                  "(of its largest process)", flush=True)
            best[workers] = min(best.get(workers, float("inf")), run.seconds)
            values[workers] = json.loads(out.read_text())
    same = values[1].keys() == values[2].keys() and all(
        abs(values[1][m][k] - values[2][m][k]) <= 1e-4 for m in values[1] for k in values[1][m])
    print()
    print(f"{args.adapters} checkpoints x propensity (tier, both contexts, {args.prompts} prompts each), "
          f"{os.cpu_count()} cores")
    print(f"{'arm':<12}{'seconds':>9}{'s/checkpoint':>14}")
    for workers in (1, 2):
        print(f"{'workers ' + str(workers):<12}{best[workers]:>9.1f}{best[workers] / args.adapters:>14.1f}")
    print(f"ratio workers 1 / workers 2: {best[1] / best[2]:.2f}x; same values: {same}")


if __name__ == "__main__":
    main()
