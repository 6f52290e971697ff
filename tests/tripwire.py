"""A tripwire on everything that loads a model or starts work, for the hostile-input tests.

:func:`arm` replaces the project's loaders (the training pipeline's base model and work directory,
the default model's conversion, the ``misalign/`` provider, a sweep's run) with functions that
record the call in ``$HOSTILE_TRIPWIRE`` (when set) and raise :class:`Tripped`; ``tripwire/``
is an Inspect provider that does the same when asked to generate. In-process tests arm it with
``monkeypatch``; as a script it arms itself and runs a command line as the console scripts do::

    python tests/tripwire.py inspect-misalign train ...     # = inspect-misalign train ...
    python tests/tripwire.py inspect eval ... --model tripwire/any

A process the tripwire stopped exits with :data:`EXIT_TRIPPED`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo

EXIT_TRIPPED = 99
ENV = "HOSTILE_TRIPWIRE"


class Tripped(AssertionError):
    """Something loaded a model or started work on input that should have been refused."""


def _trip(what: str) -> Callable[..., Any]:
    def tripped(*args: Any, **kwargs: Any) -> Any:
        marker = os.environ.get(ENV)
        if marker:
            with open(marker, "a", encoding="utf-8") as handle:
                handle.write(what + "\n")
        if os.environ.get("HOSTILE_TRIPWIRE_EXIT"):
            os._exit(EXIT_TRIPPED)  # a subprocess: no handler may turn it into a one-line error
        raise Tripped(f"{what} was called: the input reached a model load or started work")

    return tripped


def targets() -> list[tuple[Any, str, Callable[..., Any]]]:
    """(object, attribute, replacement) for each loader the tripwire guards."""
    import inspect_misalign.experiments as experiments
    import inspect_misalign.models as models
    from inspect_misalign.experiments import _sweep
    from inspect_misalign.models import _default, _provider
    from inspect_misalign.training import _pipeline

    return [
        (_pipeline, "load_base", _trip("load_base")),
        (_pipeline.Workspace, "open", classmethod(_trip("Workspace.open"))),
        (_default, "ensure_default_model", _trip("ensure_default_model")),
        (models, "ensure_default_model", _trip("ensure_default_model")),
        (_default, "convert_gguf", _trip("convert_gguf")),
        (_provider.MisalignAPI, "__init__", _trip("MisalignAPI()")),
        (_sweep, "run_sweep", _trip("run_sweep")),
        (experiments, "run_sweep", _trip("run_sweep")),
        (experiments, "run_em_defenses", _trip("run_em_defenses")),
    ]


def arm(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Replace every guarded loader (``setattr_`` may be ``monkeypatch.setattr``)."""
    for owner, name, replacement in targets():
        setattr_(owner, name, replacement)


@modelapi(name="tripwire")
def _tripwire_provider() -> type[ModelAPI]:
    return TripwireAPI


class TripwireAPI(ModelAPI):
    """An Inspect provider that loads nothing and trips when asked to generate (Inspect constructs
    the eval's models before it builds the tasks, so constructing it is allowed)."""

    async def generate(
        self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice, config: GenerateConfig
    ) -> ModelOutput:
        _trip("tripwire/ generate")()
        raise AssertionError("unreachable")


def main(argv: list[str]) -> None:
    """Arm, then run ``argv[0]`` (``inspect-misalign`` or ``inspect``) with the rest as its arguments."""
    os.environ["HOSTILE_TRIPWIRE_EXIT"] = "1"
    arm()
    program, *args = argv
    sys.argv = [program, *args]
    if program == "inspect-misalign":
        from inspect_misalign.cli import main as command
    elif program == "inspect":
        from inspect_ai._cli.main import main as command
    else:
        raise SystemExit(f"unknown program {program!r}")
    sys.exit(command())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(sys.argv[1:])
