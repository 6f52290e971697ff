"""Saved steps (``--save-at 1,2,4,8``): the adapter at chosen global steps of one run, each registered.

A run of ``train`` or ``finetune`` with ``save_at`` also saves its LoRA adapter right after each of
those optimizer steps (:class:`~inspect_misalign.training._run.SaveAtSteps`, a transformers
``TrainerCallback``) and publishes each as ``<out>-step<k>`` beside the final ``<out>``, with
``step: k`` in its lineage. With the constant learning rate the list requires, the adapter saved at
step k is the adapter a separate k-step run of the same command would train (tested): the same
seed, data order and optimizer state up to step k, and no schedule that depends on the run's length.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._fields import flag_of, setting


def save_at_setting() -> Any:
    """The ``save_at`` field of a command's config (declared once for ``train`` and ``finetune``)."""
    return setting(None, help="Also save the adapter after these optimizer steps (a comma list, strictly "
                   "increasing, each at most --steps; needs the constant --lr-scheduler), each registered "
                   "as <out>-step<k>.")


def step_name(out: str, step: int) -> str:
    """The registry name of the adapter saved at ``step`` of the run registered as ``out``."""
    return f"{out}-step{step}"


def parse_save_at(value: Any, flag: str = "--save-at") -> tuple[int, ...]:
    """Steps from a comma list (``"1,2,4"``), a list of integers, or None (none)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise MisalignError(f"{flag} must be a comma list of steps like 1,2,4, got {value!r}")
    steps = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if isinstance(text, str) and text.isdigit():
            text = int(text)
        if not isinstance(text, int) or isinstance(text, bool) or text < 1:
            raise MisalignError(f"{flag} takes optimizer steps of at least 1, like 1,2,4; got {value!r}")
        steps.append(text)
    return tuple(steps)


def check_save_at(obj: Any) -> None:
    """Parse ``obj.save_at`` in place and check it: strictly increasing, each at most the run's
    ``obj.steps`` (which must be set), a constant learning rate, and names that fit the registry
    (``<out>-step<k>``)."""
    from inspect_misalign.models import validate_name

    flag = flag_of(obj, "save_at")
    steps = parse_save_at(obj.save_at, flag)
    object.__setattr__(obj, "save_at", steps)
    if not steps:
        return
    text = ",".join(map(str, steps))
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise MisalignError(f"{flag} {text} is not strictly increasing; list each step once, in order")
    if obj.steps is None:
        raise MisalignError(f"{flag} needs {flag_of(obj, 'steps')} (optimizer steps, not --epochs)")
    if steps[-1] > obj.steps:
        raise MisalignError(f"{flag} {text} goes past the run's {obj.steps} steps; save at steps up to "
                            f"{flag_of(obj, 'steps')} or raise it")
    if obj.lr_scheduler != "constant":
        raise MisalignError(f"{flag} needs --lr-scheduler constant (a saved step must equal a run of that "
                            f"many steps), not {obj.lr_scheduler}")
    try:
        validate_name(step_name(obj.out, steps[-1]))
    except MisalignError as e:
        raise MisalignError(f"{flag}: {e}") from None


__all__ = ["check_save_at", "parse_save_at", "save_at_setting", "step_name"]
