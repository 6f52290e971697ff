"""``inspect-misalign sweep``: run (or resume) a sweep config."""

from __future__ import annotations

from pathlib import Path

import click

from inspect_misalign._errors import MisalignError


@click.command("sweep")
@click.argument("config")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Results directory [default: the config's out, else runs/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate the config and list the grid; run nothing.")
@click.option("--model-role", "model_roles", multiple=True, metavar="ROLE=MODEL",
              help="A model role of the evals, repeatable: grader=<model> (em_defenses needs one).")
@click.option("--organisms-only", is_flag=True, help="Build the config's organisms (reusing registered "
              "ones) and write their gate table (organisms.csv, organisms.md); train nothing.")
@click.option("--base", default=None, metavar="MODEL",
              help="Build every organism on MODEL (a model directory or a registered name) instead of the "
              "base in its build options: the same experiment on another model (docs/results.md, GPU "
              "recipe). Use it with --out and a fresh INSPECT_MISALIGN_HOME.")
def command(config: str, out: Path | None, dry_run: bool, model_roles: tuple[str, ...],
            organisms_only: bool, base: str | None) -> None:
    """Run the sweep in CONFIG (a YAML file or a shipped name); a re-run resumes and skips finished work.

    Shipped configs: main_curve, transfer, organism_steps, organisms_per_cue, cot, defenses, em_defenses,
    dose, removal, install, overlap_q6_25, overlap_q12_5, overlap_q25, overlap_q6_25_control, family_tag,
    family_tag_relearn, family_year_relearn, family_tier_relearn, family_realism_relearn,
    family_realism_relearn_s1, family_tag_relearn_treated, family_year_relearn_sham, family_year,
    family_year_c16, family_tag_generic16, family_tier, family_realism, family_realism_c16,
    family_headlines, organisms_more_seeds, demo.
    """
    from inspect_misalign.experiments import (
        EMDefensesConfig,
        build_organisms_only,
        load_config,
        preflight,
        priming_runs,
        relearn_runs,
        run_sweep,
    )

    sweep = load_config(config, overrides={"out": str(out)} if out else None)
    roles = _roles(model_roles)
    if isinstance(sweep, EMDefensesConfig):
        if organisms_only or base is not None:
            raise MisalignError("--organisms-only and --base are for sweeps that build organisms; "
                                "em_defenses fine-tunes its model directly (set model: in its config)")
        _em_defenses(sweep, roles, dry_run)
        return
    if roles:
        raise MisalignError("--model-role is for em_defenses configs; this sweep's evals need no grader")
    if base is not None:
        from inspect_misalign.experiments import with_base

        sweep = with_base(sweep, base)
    preflight(sweep)
    grid = sweep.grid()
    priming = [r.name for r in priming_runs(sweep)]
    relearn = priming + [r.name for r in relearn_runs(sweep)]
    also = f" + {len(relearn) - len(priming)} relearning run(s)" if relearn else ""
    also += f" + {len(priming)} priming run(s)" if priming else ""
    if _listed(f"sweep {sweep.name}: {len(sweep.organisms)} organism(s), {len(sweep.cues)} cue(s), "
               f"{len(grid)} training run(s){also} -> {sweep.out_dir}", [p.name for p in grid] + relearn,
               dry_run):
        return
    if organisms_only:
        build_organisms_only(sweep, echo=click.echo)
        return
    run_sweep(sweep, echo=click.echo)


def _listed(header: str, names: list[str], dry_run: bool) -> bool:
    """Echo the header, and with ``dry_run`` every run's name; whether that was all to do."""
    click.echo(header)
    if dry_run:
        for name in names:
            click.echo(f"  {name}")
    return dry_run


def _roles(values: tuple[str, ...]) -> dict[str, str]:
    """``ROLE=MODEL`` strings as a mapping; a usage error for anything else."""
    roles = {}
    for value in values:
        role, eq, model = value.partition("=")
        if not eq or not role.strip() or not model.strip():
            raise MisalignError(f"--model-role {value!r}: use ROLE=MODEL, e.g. grader=openai/gpt-4o")
        roles[role.strip()] = model.strip()
    return roles


def _em_defenses(config, roles: dict[str, str], dry_run: bool) -> None:
    """The defenses experiment (``kind: em_defenses``): check, list its runs, run it."""
    from inspect_misalign.experiments import em_preflight, run_em_defenses

    em_preflight(config, roles)
    runs = config.runs()
    if _listed(f"em_defenses {config.name}: fine-tune {config.model} with {len(config.defenses)} "
               f"defense(s) x {len(config.seeds)} seed(s), {len(runs)} run(s) -> {config.out_dir}",
               [r.name for r in runs], dry_run):
        return
    run_em_defenses(config, roles, echo=click.echo)
