"""``inspect-misalign check``: the CI gate on alignment metrics (exit 0 pass, 1 regression)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inspect_misalign.experiments import baseline_from_table, check, read_baseline, write_baseline
from inspect_misalign.results import results_table


def read_logs(logs: list[Path]):  # -> pd.DataFrame
    """The results table of ``logs``; a log that cannot be read is a one-line error (exit 2)."""
    from inspect_misalign._errors import MisalignError

    try:
        return results_table(logs)
    except MisalignError:
        raise
    except Exception as e:  # a truncated or foreign .eval file: zip, JSON or schema errors
        raise MisalignError(f"cannot read the logs in {', '.join(map(str, logs))} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); rerun the evals that "
                            "wrote them") from None


@click.command("check")
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--baseline", "baseline_path", required=True, type=click.Path(path_type=Path),
              help="Baseline JSON (see docs/ci.md).")
@click.option("--update-baseline", is_flag=True, help="Write the baseline from these logs.")
def command(logs: tuple[Path, ...], baseline_path: Path, update_baseline: bool) -> None:
    """Fail (exit 1) when an alignment metric in LOGS regressed against the baseline."""
    previous = read_baseline(baseline_path) if baseline_path.exists() else None
    if not update_baseline and previous is None:
        raise click.UsageError(f"baseline {baseline_path} not found; create it with --update-baseline")
    table = read_logs(list(logs))
    if update_baseline:
        baseline = baseline_from_table(table, previous)
        write_baseline(baseline, baseline_path)
        click.echo(f"wrote {len(baseline.metrics)} metric(s) to {baseline_path}")
        return
    assert previous is not None
    report = check(table, previous)
    result = report["passed"].map({True: "pass", False: "FAIL"})
    result[~report["errors_ok"]] = "FAIL (errored)"
    shown = report.assign(result=result)
    if not any(m.model for m in previous.metrics):
        shown = shown.drop(columns=["model"])
    formats = {c: "{:.4f}".format for c in ("p_worse", "p_holm")}
    click.echo(shown.drop(columns=["passed", "errors_ok"]).to_string(index=False, float_format="%.3f",
                                                                       formatters=formats))
    click.echo(f"(exact one-sided test of 'worse by more than the tolerance', Holm-adjusted over "
               f"{len(report)} metric(s), alpha {previous.alpha}; at most {previous.max_errored} errored "
               "sample(s) per metric)")
    errored = int((~report["errors_ok"]).sum())
    if errored:
        click.echo(f"{errored} metric(s) had more errored or unscored samples than the baseline allows "
                   f"(max_errored {previous.max_errored}): their samples are missing, not passing")
    failed = int((~report["passed"]).sum())
    click.echo(f"\n{len(report) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
