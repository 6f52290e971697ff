"""Benchmark: four LoRA adapters of the default model, ``misalign/`` vs Inspect's ``hf/``.

The adapters (random, nonzero LoRA weights on q/v projections) are made with peft into a temp
dir and registered under a temp registry. Then, each side as separate whole processes timed
from outside (wall clock, peak RSS), same 32 prompts per adapter, max 32 new tokens, greedy:

- misalign: ONE process, ``inspect_ai.eval`` over the four models ``misalign/bench-lora-<i>``
  (one base load, adapters loaded onto it) with ``-M batch_size=32`` and ``max_connections=32``,
  once with the default lanes (two 1-thread lanes on this CPU, each running batches of up to 32
  with every row routed to its adapter, so the lanes run different adapters at once) and once
  with ``-M lanes=1`` (one 2-thread lane, batches of 32 of one adapter with its LoRA delta merged
  into the base); with ``--mixed`` also with
  ``-M batch_size=128 -M lanes=1`` (all four adapters' requests share batches through peft's
  per-row ``adapter_names``);
- hf: the four adapter directories one by one, one process each,
  ``hf/<adapter dir> -M tokenizer=<default dir> -M do_sample=false`` (transformers loads a PEFT
  directory itself: the base named in its adapter config, then the adapter).

The children print how often base weights and adapters were loaded (counters in
:mod:`inspect_misalign.models._loading`; for ``hf/``, constructions of its ``HuggingFaceAPI``, each
of which loads the weights) and the misalign batch sizes.

Run: ``.venv/bin/python benchmarks/bench_adapters.py [--mixed]``. Target: misalign at least 2.5x
faster than the four hf/ processes together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import Timing, bench_env, timed  # noqa: E402

N_ADAPTERS = 4
N_PROMPTS = 32
MAX_TOKENS = 32
BATCH = 32


def make_adapters(base_dir: str, root: Path) -> list[Path]:
    """Save ``N_ADAPTERS`` LoRA adapters of ``base_dir`` with random nonzero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dirs = []
    for i in range(N_ADAPTERS):
        base = AutoModelForCausalLM.from_pretrained(base_dir)
        config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(100 + i)
        model = get_peft_model(base, config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.01)
        out = root / f"adapter{i}"
        model.save_pretrained(out)
        dirs.append(out)
    return dirs


def run_misalign(names: list[str], log_dir: str, batch_size: int, lanes: str) -> None:
    """Child: one process, one eval over all adapter models; print load counts as JSON."""
    from bench_task import bench_prompts
    from inspect_ai import eval

    from inspect_misalign.models import _loading

    logs = eval(
        bench_prompts(n=N_PROMPTS, max_tokens=MAX_TOKENS),
        model=[f"misalign/{name}" for name in names],
        model_args={"batch_size": batch_size, "lanes": lanes},
        max_connections=BATCH,
        display="none",
        log_dir=log_dir,
    )
    assert all(log.status == "success" for log in logs), [log.error for log in logs]
    batches = [size for base in _loading.loaded_bases() for size in base.batcher.batch_sizes]
    lanes_used = [base.batcher.lanes for base in _loading.loaded_bases()]
    loads = {
        "base_loads": _loading.BASE_LOADS,
        "adapter_loads": _loading.ADAPTER_LOADS,
        "lanes": lanes_used,
        "batches": batches,
    }
    print("RESULT " + json.dumps(loads))


def run_hf(adapter: str, tokenizer: str, log_dir: str) -> None:
    """Child: one eval of one adapter directory with hf/; print its weight loads as JSON."""
    from bench_task import bench_prompts
    from inspect_ai import eval
    from inspect_ai.model._providers import hf

    loads = 0
    original = hf.HuggingFaceAPI.__init__

    def counting_init(self: object, *args: object, **kwargs: object) -> None:
        nonlocal loads
        loads += 1  # every construction loads the weights
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    hf.HuggingFaceAPI.__init__ = counting_init  # type: ignore[method-assign]
    [log] = eval(
        bench_prompts(n=N_PROMPTS, max_tokens=MAX_TOKENS),
        model=f"hf/{adapter}",
        model_args={"tokenizer": tokenizer, "do_sample": False, "batch_size": BATCH},
        max_connections=BATCH,
        display="none",
        log_dir=log_dir,
    )
    assert log.status == "success", log.error
    print("RESULT " + json.dumps({"base_loads": loads}))


def _result(timing: Timing) -> dict[str, Any]:
    for line in timing.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise SystemExit(f"{timing.name} failed:\n{timing.stdout[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["misalign", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--names", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--log-dir", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--lanes", default="auto", help=argparse.SUPPRESS)
    parser.add_argument(
        "--mixed", action="store_true", help="also run misalign with batch 128 (mixed-adapter batches)"
    )
    args = parser.parse_args()
    if args.variant == "misalign":
        run_misalign(args.names, args.log_dir, args.batch_size, args.lanes)
        return
    if args.variant == "hf":
        run_hf(args.adapter, args.tokenizer, args.log_dir)
        return

    from inspect_misalign.models import ensure_default_model

    base_dir = str(ensure_default_model())
    work = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    home = work / "registry"
    os.environ["INSPECT_MISALIGN_HOME"] = str(home)
    from inspect_misalign.models import register

    print("making adapters ...", flush=True)
    adapters = make_adapters(base_dir, work)
    names = [f"bench-lora-{i}" for i in range(N_ADAPTERS)]
    for name, adapter in zip(names, adapters, strict=True):
        register(name, adapter, base="default", config={"benchmark": True})
    env = bench_env(INSPECT_MISALIGN_HOME=str(home))
    logs = str(work / "logs")

    misalign_runs = []
    settings = [(BATCH, "auto"), (BATCH, "1")]
    if args.mixed:
        settings.append((N_ADAPTERS * BATCH, "1"))
    for batch_size, lanes in settings:
        print(f"running misalign (1 process, 4 adapters, batch {batch_size}, lanes {lanes}) ...", flush=True)
        command = [sys.executable, __file__, "--variant", "misalign", "--log-dir", logs,
                   "--batch-size", str(batch_size), "--lanes", lanes, "--names", *names]  # fmt: skip
        run = timed(f"misalign, batch {batch_size}, lanes {lanes}", command, env=env)
        misalign_runs.append((run, _result(run)))
        print(f"  {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB, {_result(run)}", flush=True)

    hf_runs = []
    for i, adapter in enumerate(adapters):
        print(f"running hf/ adapter {i} ...", flush=True)
        command = [sys.executable, __file__, "--variant", "hf", "--adapter", str(adapter),
                   "--tokenizer", base_dir, "--log-dir", logs]  # fmt: skip
        run = timed(f"hf/ adapter {i}", command, env=env)
        hf_runs.append(run)
        print(f"  {run.seconds:.1f} s, peak RSS {run.peak_rss_mib:.0f} MiB, {_result(run)}", flush=True)
    hf_loads = sum(_result(run)["base_loads"] for run in hf_runs)
    hf_seconds = sum(run.seconds for run in hf_runs)
    hf_rss = max(run.peak_rss_mib for run in hf_runs)

    print()
    print(f"{N_ADAPTERS} LoRA adapters x {N_PROMPTS} prompts, max {MAX_TOKENS} new tokens, greedy")
    print(f"{'variant':<38}{'seconds':>9}{'peak RSS MiB':>14}{'base loads':>12}{'adapter loads':>15}")
    for run, loads in misalign_runs:
        print(
            f"{run.name + ' (1 process)':<38}{run.seconds:>9.1f}{run.peak_rss_mib:>14.0f}"
            f"{loads['base_loads']:>12}{loads['adapter_loads']:>15}"
        )
    for run in hf_runs:
        print(f"{run.name:<38}{run.seconds:>9.1f}{run.peak_rss_mib:>14.0f}{_result(run)['base_loads']:>12}")
    print(f"{'hf/ total (4 processes)':<38}{hf_seconds:>9.1f}{hf_rss:>14.0f}{hf_loads:>12}")
    print()
    for run, _ in misalign_runs:
        print(f"{run.name} vs hf/: {hf_seconds / run.seconds:.2f}x faster (target >= 2.5x)")
    lanes_auto, lanes_one = misalign_runs[0][0], misalign_runs[1][0]
    print(f"lanes auto vs lanes 1: {lanes_one.seconds / lanes_auto.seconds:.2f}x faster")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
