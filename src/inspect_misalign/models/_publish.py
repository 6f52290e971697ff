"""Build a directory once and publish it atomically: temp dir + rename, a file lock, a marker.

A published directory holds a marker file listing every file and its size. Readers treat a
directory with a valid marker as complete, a missing directory as absent, and anything else as
corrupted (the fix is to delete it). Writers build into a temporary sibling directory under a file
lock and rename it into place, so an interrupted or concurrent build never leaves a partial
directory at the target path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from inspect_misalign._errors import MisalignError

MARKER = ".inspect_misalign_complete.json"

State = Literal["absent", "complete", "corrupted"]


class CorruptedCacheError(MisalignError, RuntimeError):
    """A published directory exists but is incomplete or damaged (the message names the fix)."""


def directory_state(target: Path) -> tuple[State, str]:
    """Classify ``target`` as absent, complete or corrupted (with a reason)."""
    if not target.exists():
        return "absent", ""
    if not target.is_dir():
        return "corrupted", "not a directory"
    marker = target / MARKER
    try:
        info = json.loads(marker.read_text())
        files: dict[str, int] = info["files"]
    except FileNotFoundError:
        return "corrupted", f"completion marker {MARKER} is missing"
    except (ValueError, KeyError, TypeError):
        return "corrupted", f"completion marker {MARKER} is unreadable"
    for name, size in files.items():
        path = target / name
        if not path.is_file():
            return "corrupted", f"{name} is missing"
        if path.stat().st_size != size:
            return "corrupted", f"{name} has the wrong size"
    return "complete", ""


def read_marker(target: Path) -> dict[str, Any]:
    """The marker of a complete directory (its ``files`` plus any ``extra`` fields)."""
    return json.loads((target / MARKER).read_text())


def corrupted_error(target: Path, reason: str) -> CorruptedCacheError:
    return CorruptedCacheError(
        f"cache directory {target} is corrupted ({reason}); delete it (rm -rf '{target}') "
        "and run again to rebuild it"
    )


def ensure_complete(target: Path) -> bool:
    """True if ``target`` is complete, False if absent; raise :class:`CorruptedCacheError`."""
    state, reason = directory_state(target)
    if state == "corrupted":
        raise corrupted_error(target, reason)
    return state == "complete"


def publish_atomically(
    target: Path,
    build: Callable[[Path], None],
    extra: dict[str, Any] | None = None,
    lock_timeout: float = -1,
) -> Path:
    """Return ``target``, building it with ``build(tmp_dir)`` first if it is absent.

    ``build`` fills an empty temporary directory beside ``target``; the marker (with ``extra``
    fields) is then written and the directory renamed into place. Concurrent callers wait on a
    file lock and reuse the first result; a failing ``build`` leaves ``target`` absent.
    """
    from filelock import FileLock

    target = Path(target)
    if ensure_complete(target):
        remove_stale_builds(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(target), timeout=lock_timeout):
        if ensure_complete(target):
            return target
        _remove_temp_dirs(target)  # we hold the lock: any temp dir beside the target is a dead build's
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            build(tmp)
            files = {}
            for path in sorted(tmp.rglob("*")):
                if path.is_file():
                    _fsync(path)
                    files[path.relative_to(tmp).as_posix()] = path.stat().st_size
            marker = {"files": files, **(extra or {})}
            (tmp / MARKER).write_text(json.dumps(marker, indent=2))
            _fsync(tmp / MARKER)
            tmp.chmod(0o755)  # mkdtemp makes it private; published caches are ordinary dirs
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def remove_stale_builds(target: Path) -> int:
    """Delete the temp dirs that killed builds of ``target`` left beside it, if the build lock is free
    (a temp dir exists only while its builder holds the lock); returns how many were deleted. Cheap
    when there are none: the lock is taken only when one is found."""
    from filelock import FileLock, Timeout

    if not any(Path(target).parent.glob(f".{Path(target).name}.tmp-*")):
        return 0
    try:
        with FileLock(_lock_path(Path(target)), timeout=0):
            return _remove_temp_dirs(Path(target))
    except Timeout:  # a build is running: its temp dir is not stale
        return 0


def _lock_path(target: Path) -> str:
    return str(target.parent / f".{target.name}.lock")


def _remove_temp_dirs(target: Path) -> int:
    """Delete every build temp dir of ``target`` (call with its lock held)."""
    stale = list(target.parent.glob(f".{target.name}.tmp-*"))
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
