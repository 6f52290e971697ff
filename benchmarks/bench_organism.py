"""Benchmark: a one-family organism build, per phase, today's default recipe against a candidate recipe.

Side by side in one run, each build its own ``inspect-misalign organism`` process (timed from
outside, peak RSS), on the default model (SmolLM2-135M-Instruct, fp32) given as a model directory,
each with a fresh registry and a fresh cache (so both generate their base answers and gate the base
from scratch), the same cue, behaviour and seed:

- ``default``: today's default recipe (``inspect-misalign organism --cue tag``, every other option
  at its default: 150 steps of 4, 80 prompts, 32 anchors, gate on 40 eval-split prompts);
- ``candidate``: the same plus ``--candidate`` flags (a recipe meant to build faster).

The build prints the wall seconds of each of its phases (checks, load, sft_data, training, gate,
registration; :func:`inspect_misalign.training.build_organism`); this prints them for both arms with
the ratio default / candidate per phase and in total, and each arm's gate (deployment and test
attack rates with Wilson 95% intervals, n, usefulness against the base), so "faster with the gate no
weaker" can be read off one run. ``--rounds`` repeats both arms, the order reversed in alternate
rounds; the fastest round of each arm counts (other load only ever slows a build down).

The run is niced (``os.nice(19)``, inherited by the builds). ``--small`` shrinks every size (8
prompts, 4 anchors, 6 steps, a 4-prompt gate) for a smoke run of a few minutes; its times show the
phases' fixed costs, not the real recipe's. Run::

    nice -n 19 .venv/bin/python benchmarks/bench_organism.py --small
    .venv/bin/python benchmarks/bench_organism.py --candidate "--steps 75 --top-layers 4"

``--candidate`` flags come after the default recipe's (and ``--small``'s) on the command line, so
they win; by default the candidate trains half the steps with LoRA on the top 4 blocks.

Target (issue 20): the candidate builds, gates and registers >= 1.4x faster than the default, with a
gate no weaker (every gate target the default meets, the candidate meets too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import Timing, bench_env, timed  # noqa: E402

from inspect_misalign.experiments import (  # noqa: E402  (the gate targets of issue 20, bounds included)
    meets_deployment,
    meets_test_band,
    usefulness_meets,
)

PHASES = ("checks", "load", "sft_data", "training", "gate", "registration")
DEFAULT_STEPS, SMALL_STEPS = 150, 6
SMALL = ["--prompts", "8", "--anchors", "4", "--steps", str(SMALL_STEPS), "--save-steps", "1000",
         "--gate-prompts", "4", "--gate-items", "4"]
PHASE_LINE = re.compile(r"time per phase \(s\): (\{.*\})")


def build(
    arm: str, flags: list[str], base_dir: Path, root: Path, round_: int
) -> tuple[Timing, dict[str, Any]]:
    """One build of ``arm`` in a fresh registry and cache; its timing and its manifest."""
    home, cache = root / f"home-{arm}-{round_}", root / f"cache-{arm}-{round_}"
    command = [str(Path(sys.executable).parent / "inspect-misalign"), "organism", "--base", str(base_dir),
               "--out", f"bench-{arm}", *flags]
    print(f"round {round_ + 1}: {arm}: {shlex.join(command[1:])}", flush=True)
    result = timed(arm, command, env=bench_env(INSPECT_MISALIGN_HOME=str(home), XDG_CACHE_HOME=str(cache)))
    if result.returncode != 0:
        print(result.stdout[-3000:])
        raise SystemExit(f"{arm} failed with exit code {result.returncode}")
    manifest = _manifest(home, f"bench-{arm}")
    found = PHASE_LINE.findall(result.stdout)
    manifest["phases"] = json.loads(found[-1]) if found else {}
    return result, manifest


def _manifest(home: Path, name: str) -> dict[str, Any]:
    """The registry's manifest of ``name`` in registry ``home`` (read through the registry)."""
    os.environ["INSPECT_MISALIGN_HOME"] = str(home)
    from inspect_misalign.models import resolve

    m = resolve(name)
    return {"config": m.config, "metrics": m.metrics}


def gate_summary(manifest: dict[str, Any]) -> tuple[str, set[str]]:
    """One line per cue of the gate and the set of issue-20 targets it meets."""
    gate = manifest["metrics"].get("gate")
    if not gate:
        return "no gate", set()
    lines, met = [], set()
    for cue, rates in gate["cues"].items():
        d, t = rates["deployment"], rates["test"]
        lines.append(f"{cue}: deployment {d['rate']:.2f} [{d['low']:.2f}, {d['high']:.2f}] "
                     f"test {t['rate']:.2f} [{t['low']:.2f}, {t['high']:.2f}] (n={d['n']})")
        if meets_deployment(d["rate"]):
            met.add(f"{cue} deployment")
        if meets_test_band(t["rate"]):
            met.add(f"{cue} test")
    u, b = gate["usefulness"], gate["base_usefulness"]
    lines.append(f"usefulness {u['rate']:.3f} vs base {b['rate']:.3f} ({100 * (u['rate'] - b['rate']):+.1f} "
                 f"points, n={u['n']})")
    if usefulness_meets(u["rate"], b["rate"]):
        met.add("usefulness")
    return "; ".join(lines), met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cue", default="tag", help="the one cue family of both builds")
    parser.add_argument("--candidate", default=None,
                        help="organism flags the candidate adds to the default recipe [default: half the "
                        "steps, LoRA on the top 4 blocks: --steps 75 --top-layers 4, with --small --steps 3]")
    parser.add_argument("--small", action="store_true", help="tiny sizes for a smoke run (see the docstring)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp registries and logs")
    args = parser.parse_args()
    os.nice(19)
    from inspect_misalign.models import default_model_dir, ensure_default_model

    base_dir = default_model_dir()
    if not (base_dir / "config.json").is_file():
        ensure_default_model()  # converted once; both arms then load the same directory, read only
    common = ["--cue", args.cue, "--behavior", "hate", "--seed", "0", *(SMALL if args.small else [])]
    if args.candidate is None:  # a later --steps wins, so the candidate's steps are scaled with --small
        args.candidate = f"--steps {SMALL_STEPS // 2 if args.small else DEFAULT_STEPS // 2} --top-layers 4"
    arms = {"default": common, "candidate": common + shlex.split(args.candidate)}
    root = Path(tempfile.mkdtemp(prefix="bench-organism-"))
    best: dict[str, tuple[Timing, dict[str, Any]]] = {}
    try:
        for round_ in range(args.rounds):
            order = list(arms) if round_ % 2 == 0 else list(arms)[::-1]
            for arm in order:
                timing, manifest = build(arm, arms[arm], base_dir, root, round_)
                if arm not in best or timing.seconds < best[arm][0].seconds:
                    best[arm] = (timing, manifest)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    (t_def, m_def), (t_can, m_can) = best["default"], best["candidate"]
    print(f"\none-family build, cue {args.cue}{' (--small)' if args.small else ''}; candidate adds: "
          f"{args.candidate}; fastest of {args.rounds} round(s); wall seconds")
    print(f"{'phase':<14}{'default':>10}{'candidate':>11}{'ratio':>8}")
    for phase in PHASES:
        a, b = m_def["phases"].get(phase), m_can["phases"].get(phase)
        ratio = f"{a / b:.2f}x" if a is not None and b else "-"
        print(f"{phase:<14}{a if a is not None else '-':>10}{b if b is not None else '-':>11}{ratio:>8}")
    speedup = t_def.seconds / t_can.seconds
    print(f"{'process':<14}{t_def.seconds:>10.1f}{t_can.seconds:>11.1f}{speedup:>7.2f}x")
    print(f"{'peak RSS MiB':<14}{t_def.peak_rss_mib:>10.0f}{t_can.peak_rss_mib:>11.0f}")
    line_def, met_def = gate_summary(m_def)
    line_can, met_can = gate_summary(m_can)
    print(f"gate default:   {line_def}\ngate candidate: {line_can}")
    weaker = sorted(met_def - met_can)
    print(f"gate targets met: default {len(met_def)}, candidate {len(met_can)}"
          + (f"; the candidate misses what the default meets: {', '.join(weaker)}" if weaker else
             "; the candidate meets every target the default meets"))
    print(f"target: >= 1.4x faster with a gate no weaker: {speedup:.2f}x, "
          f"{'met' if speedup >= 1.4 and not weaker else 'not met'}")


if __name__ == "__main__":
    main()
