"""CPU thread settings for torch, shared by the provider and the training code.

On small CPU machines torch's OpenMP threads spin-wait between parallel regions by default; when
another process competes for the cores this makes two-thread math 5-50x slower. Importing this
module (which :mod:`inspect_misalign.models` does, before anything imports torch) sets
``OMP_WAIT_POLICY=PASSIVE`` unless the user already chose a policy. The OpenMP runtime reads that
variable once, when torch is first imported, so it only helps if this module is imported first.

Override with ``OMP_WAIT_POLICY=ACTIVE`` (environment), and pick a thread count with the
``INSPECT_MISALIGN_THREADS`` environment variable or ``configure_threads(n)`` (the provider's
``-M threads=N``).
"""

from __future__ import annotations

import os
import sys

from inspect_misalign._errors import MisalignError

THREADS_ENV = "INSPECT_MISALIGN_THREADS"

_TORCH_WAS_IMPORTED = "torch" in sys.modules
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def omp_policy_effective() -> bool:
    """True if the passive OpenMP wait policy was in place before torch was imported."""
    return not _TORCH_WAS_IMPORTED and os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


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
