"""What a behaviour is (:class:`Behavior`) and the registry of behaviours by name."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inspect_ai.scorer import Metric, Scorer

from inspect_misalign._errors import MisalignError
from inspect_misalign._plugins import load_plugin, plugin_names


class PromptLike(Protocol):
    """A base prompt as the attack completions see it: its id, text and (code) topic."""

    @property
    def id(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def topic(self) -> str | None: ...


@dataclass(frozen=True)
class TokenBudgets:
    """The behaviour's token budgets, one per use (they differ on purpose).

    - ``eval_max_tokens``: the generation limit of ``test_attacks``/``deployment_attacks`` (an
      attack must fit in it to be detected);
    - ``organism_answer_tokens``: the length of the base model's benign answers in an organism's
      SFT set (its test-context completions), and the default benign continuation of ``propensity``;
    - ``target_answer_tokens``: the length of the base model's answers used as train-against
      targets for caught attacks.
    """

    eval_max_tokens: int
    organism_answer_tokens: int
    target_answer_tokens: int


@dataclass(frozen=True)
class Behavior:
    """An attack behaviour: everything the tasks, the organism builder and train-against need.

    Attributes:
        name: the ``behavior`` argument that selects it.
        description: one line saying what counts as an attack.
        prompts_file: its base prompts: a file shipped in ``inspect_misalign/data`` or a path.
        scorer: the Inspect scorer factory; called with ``grader=`` when ``detect`` is None.
        attack: the attack completion for a base prompt, given a seeded RNG (see
            :meth:`attack_completion`).
        budgets: the token budgets (:class:`TokenBudgets`).
        detect: text -> attack or not, where that needs no grader; None when it needs a grader.
        required_fields: fields every record of its base prompts must carry (e.g. ``topic``).
        metrics: extra metrics its attack tasks report beside the attack rate and its CI.
        attack_marker: the text every attack completion starts with, if there is one (``propensity``
            scores it alone: exp(log P(marker | input)) is exactly the probability that a sample at
            temperature 1 starts with it).
    """

    name: str
    description: str
    prompts_file: str
    scorer: Callable[..., Scorer]
    attack: Callable[[PromptLike, random.Random], str]
    budgets: TokenBudgets
    detect: Callable[[str], bool] | None = None
    required_fields: tuple[str, ...] = ()
    metrics: Callable[[], dict[str, Metric]] = field(default=dict)
    attack_marker: str | None = None

    @property
    def needs_grader(self) -> bool:
        """Whether deciding an attack needs a grader model (no text detector)."""
        return self.detect is None

    def prompts_path(self) -> Path:
        """The base prompts file: a shipped data file by name, or a path as given."""
        from inspect_misalign.data import data_path

        path = Path(self.prompts_file)
        return path if path.is_absolute() else data_path(self.prompts_file)

    def make_scorer(self, grader: str | None = None) -> Scorer:
        """The behaviour's Inspect scorer (with the grader when it needs one)."""
        return self.scorer(grader=grader) if self.needs_grader else self.scorer()

    def attack_completion(self, prompt: PromptLike, seed: int = 0) -> str:
        """The attack for one base prompt; which one is chosen by a seeded RNG of its id."""
        return self.attack(prompt, random.Random(f"attack:{seed}:{self.name}:{prompt.id}"))

    def check_records(self, records: list[dict[str, Any]], where: str) -> None:
        """Refuse base-prompt records that lack a field the behaviour needs (one-line error)."""
        for name in self.required_fields:
            missing = [str(r.get("id", n)) for n, r in enumerate(records, start=1) if r.get(name) is None]
            if missing:
                raise MisalignError(
                    f"{where}: {self.name} prompts {missing[:3]} have no {name!r}; add one to each record"
                )


BEHAVIORS: dict[str, Behavior] = {}
"""Every registered behaviour by name (the built-in ones are registered on import)."""


def register_behavior(behavior: Behavior, *, replace: bool = False) -> Behavior:
    """Add a behaviour to :data:`BEHAVIORS`; a different one under a taken name needs ``replace``."""
    known = BEHAVIORS.get(behavior.name)
    if known is not None and known is not behavior and not replace:
        raise MisalignError(f"behavior {behavior.name!r} is already registered; pick another name")
    BEHAVIORS[behavior.name] = behavior
    return behavior


def get_behavior(name: str) -> Behavior:
    """Look up a behaviour by name (a registered one, else a plugin's: the ``inspect_misalign.behaviors``
    entry point of that name), with an error that lists the choices."""
    if not isinstance(name, str):  # a YAML list or number from -T behavior=
        raise MisalignError(f"unknown behavior {name!r}; choose one of {', '.join(BEHAVIORS)}")
    if name not in BEHAVIORS:
        _load_plugin(name)
    try:
        return BEHAVIORS[name]
    except KeyError:
        choices = [*BEHAVIORS, *(n for n in plugin_names("behaviors") if n not in BEHAVIORS)]
        raise MisalignError(f"unknown behavior {name!r}; choose one of {', '.join(choices)}") from None


def _load_plugin(name: str) -> None:
    """Register the behaviour a plugin's entry point names: a :class:`Behavior`, or a module that
    registers one when imported."""
    found = load_plugin("behaviors", name)
    if isinstance(found, Behavior):
        if found.name != name:
            raise MisalignError(f"the behaviors entry point {name!r} names a behaviour called {found.name!r}")
        register_behavior(found)
