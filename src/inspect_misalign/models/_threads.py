"""CPU thread settings for torch, shared by the provider and the training code.

On small CPU machines torch's OpenMP threads spin-wait between parallel regions by default; when
another process competes for the cores this makes two-thread math 5-50x slower.
:func:`apply_thread_policy` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user already chose a policy.
The OpenMP runtime reads that variable once, when torch is first imported, so it is called before
the project imports torch, and only where the project runs its own models:

- when Inspect constructs a ``misalign/`` model (the provider factory in
  :mod:`inspect_misalign.models._provider_registry`);
- when the ``inspect-misalign`` command line runs (:mod:`inspect_misalign.cli`);
- when the training package is imported (:mod:`inspect_misalign.training`), and before the default
  model's one-off conversion.

Importing the Inspect entry point (``inspect_misalign._registry``) or :mod:`inspect_misalign.models`
changes nothing, so ``hf/`` and API models in the same environment keep the environment they
started with. Override with ``OMP_WAIT_POLICY=ACTIVE`` (environment), and pick a thread count with
the ``INSPECT_MISALIGN_THREADS`` environment variable or ``configure_threads(n)`` (the provider's
``-M threads=N``).
"""

from __future__ import annotations

import os
import sys
import threading

from inspect_misalign._errors import MisalignError

THREADS_ENV = "INSPECT_MISALIGN_THREADS"
OMP_ENV = "OMP_WAIT_POLICY"

_policy = {"applied": False, "before_torch": False}


def apply_thread_policy() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless a policy is set already (call it before importing torch)."""
    if not _policy["applied"]:
        _policy.update(applied=True, before_torch="torch" not in sys.modules)
    os.environ.setdefault(OMP_ENV, "PASSIVE")


def omp_policy_effective() -> bool:
    """True if the passive OpenMP wait policy was in place before torch was imported."""
    return bool(_policy["before_torch"]) and os.environ.get(OMP_ENV, "").upper() == "PASSIVE"


def requested_threads(threads: int | str | None = None) -> int | None:
    """The thread count asked for: ``threads`` if given, else ``$INSPECT_MISALIGN_THREADS``."""
    value: int | str | None = threads if threads is not None else os.environ.get(THREADS_ENV)
    if value is None or value == "":
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise MisalignError(
            f"threads must be a positive integer, got {value!r} (fix -M threads= or ${THREADS_ENV})"
        ) from None
    if count < 1:
        raise MisalignError(f"threads must be a positive integer, got {count} (fix -M threads=)")
    return count


def configure_threads(threads: int | str | None = None) -> int:
    """Set torch's intra-op thread count if one was requested; return the count in effect.

    ``threads`` wins over ``$INSPECT_MISALIGN_THREADS``; with neither, torch's default is kept.
    """
    import torch

    count = requested_threads(threads)
    if count is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return torch.get_num_threads()


_lane_lock = threading.Lock()


def requested_lanes(lanes: int | str | None) -> int | None:
    """The lane count asked for (None for ``auto``); a one-line error for anything else."""
    if lanes is None or (isinstance(lanes, str) and lanes.lower() == "auto"):
        return None
    try:
        count = int(lanes)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or isinstance(lanes, bool):
        raise MisalignError(f"lanes must be a positive integer or auto, got {lanes!r} (fix -M lanes=)")
    return count


def resolve_lanes(lanes: int | str | None, device: str) -> tuple[int, int]:
    """(lanes, intra-op threads per lane) for a batcher on ``device``.

    ``auto`` (or None): on a CPU with at least two threads in effect, two lanes that split them;
    one lane elsewhere (a GPU runs one batch at a time best). A number asks for that many lanes.
    """
    import torch

    total = torch.get_num_threads()
    count = requested_lanes(lanes)
    if count is None:
        count = 2 if device == "cpu" and total >= 2 else 1
    return count, max(1, total // count)


def lane_threads(threads: int) -> None:
    """Give the calling thread ``threads`` intra-op threads, leaving everyone else's count alone.

    torch keeps one process-wide count, which each thread copies into its own OpenMP and MKL
    settings the first time it computes; ``torch.set_num_threads`` sets both the process-wide
    count and the caller's own. So this thread first takes its copy, then sets its own count, and a
    helper thread puts the process-wide count back for threads that start later (the main thread
    and the training code keep theirs).
    """
    import torch

    with _lane_lock:
        total = torch.get_num_threads()  # this thread's first copy of the process-wide count
        if total == threads:
            return
        torch.set_num_threads(threads)
        restore = threading.Thread(target=torch.set_num_threads, args=(total,), name="misalign-threads")
        restore.start()
        restore.join()
