"""Bad input under ``inspect eval``: one line, not a traceback.

Inspect builds tasks inside an anyio task group, so a task's :class:`MisalignError` reaches the
interpreter wrapped in an ``ExceptionGroup`` and is printed at the end of a long traceback. The entry
point installs :func:`install` (no heavy imports): an uncaught exception that is, or whose group
holds, a :class:`MisalignError` prints ``Error: <message>`` and exits 2, as the project's own CLI
does; every other exception goes to the hook that was there before (Inspect's).
"""

from __future__ import annotations

import sys
from types import TracebackType

from inspect_misalign._errors import MisalignError

EXIT_BAD_INPUT = 2


def misalign_error(exc: BaseException | None) -> MisalignError | None:
    """The first :class:`MisalignError` in ``exc`` or (recursively) in its exception group."""
    if isinstance(exc, MisalignError):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = misalign_error(inner)
        if found is not None:
            return found
    return None


def install() -> None:
    """Wrap ``sys.excepthook`` once (see the module docstring)."""
    previous = sys.excepthook
    if getattr(previous, "misalign_one_line", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        found = misalign_error(exc)
        if found is None:
            previous(kind, exc, tb)
            return
        print(f"Error: {found}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)

    hook.misalign_one_line = True  # type: ignore[attr-defined]
    sys.excepthook = hook
