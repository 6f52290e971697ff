"""Checkpoint registry: names for local checkpoints (full models and PEFT adapters).

Each registered checkpoint gets a manifest, ``misalign_manifest.json``, written beside its weights
(inside the checkpoint directory; PEFT, transformers and vLLM ignore the extra file) and an entry in
``index.json`` under the registry home: ``$INSPECT_MISALIGN_HOME``, else
``$XDG_DATA_HOME/inspect_misalign``, else ``~/.local/share/inspect_misalign``. Writes go to a temp
file that replaces the target (``os.replace``) while a file lock is held.

Any registered name works as ``--model misalign/<name>``; an adapter entry loads its ``base``
(a registered name, ``default`` or a directory) plus the adapter.

Example (training code)::

    from inspect_misalign.models import register
    register("organism-v1", "runs/organism/adapter", base="default", parent="default",
             config={"lr": 1e-4}, metrics={"attack_rate": 0.8})
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError

MANIFEST_FILE = "misalign_manifest.json"
INDEX_FILE = "index.json"
HOME_ENV = "INSPECT_MISALIGN_HOME"
RESERVED_NAMES = frozenset({"default"})
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class UnknownModelError(MisalignError, KeyError):
    """No checkpoint is registered under the name (a :class:`MisalignError` and a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


class Manifest(BaseModel):
    """What the registry knows about one checkpoint."""

    name: str
    path: str = Field(description="absolute path of the checkpoint (model or PEFT adapter) dir")
    adapter: bool = Field(default=False, description="path is a PEFT adapter directory")
    base: str | None = Field(
        default=None, description="for adapters: the base it applies to (name, 'default' or dir)"
    )
    parent: str | None = Field(default=None, description="the checkpoint this one was made from")
    config: dict[str, Any] = Field(default_factory=dict, description="creation config")
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: _now())
    updated: str = Field(default_factory=lambda: _now())
    version: int = 1


def registry_home() -> Path:
    """The registry directory (``$INSPECT_MISALIGN_HOME`` or the XDG data dir)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "inspect_misalign"


def index_path() -> Path:
    """Path of the registry's ``index.json``."""
    return registry_home() / INDEX_FILE


MAX_NAME_LENGTH = 100
"""Names become directory names (with prefixes and suffixes for temp dirs): well under 255 bytes."""


def validate_name(name: str) -> None:
    """Raise ValueError unless ``name`` can be registered (letters, digits, ``.``, ``_``, ``-``; at most
    :data:`MAX_NAME_LENGTH` characters)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise MisalignError(
            f"invalid checkpoint name {name!r}: use letters, digits, '.', '_' and '-' "
            "(no '/': names with a slash are read as directories)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise MisalignError(f"checkpoint name of {len(name)} characters is too long; use at most "
                            f"{MAX_NAME_LENGTH}")
    if name in RESERVED_NAMES:
        raise MisalignError(f"checkpoint name {name!r} is reserved; pick another name")


def register(
    name: str,
    path: str | os.PathLike[str],
    *,
    base: str | None = None,
    adapter: bool | None = None,
    parent: str | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Register the checkpoint directory ``path`` under ``name`` and return its manifest.

    ``adapter`` defaults to whether ``path`` holds ``adapter_config.json``. For an adapter,
    ``base`` defaults to the adapter config's ``base_model_name_or_path``. Registering an existing
    name raises ``ValueError`` unless ``overwrite=True``.
    """
    validate_name(name)
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    if adapter is None:
        adapter = (directory / "adapter_config.json").is_file()
    if adapter and base is None:
        base = _adapter_config_base(directory)
        if not base:
            raise MisalignError(
                f"adapter {directory} names no base model; pass base= (a registered name, "
                "'default' or a directory)"
            )
    manifest = Manifest(
        name=name,
        path=str(directory),
        adapter=adapter,
        base=base,
        parent=parent,
        config=_jsonable(config or {}),
        metrics=_jsonable(metrics or {}),
    )
    with _locked():
        index = _read_index()
        if name in index and not overwrite:
            raise MisalignError(
                f"checkpoint name {name!r} is already registered (at {index[name].path}); "
                "pass overwrite=True to replace it"
            )
        if name in index:
            manifest.created = index[name].created
        _write_manifest(manifest)
        index[name] = manifest
        _write_index(index)
    return manifest


def resolve(name: str) -> Manifest:
    """The manifest registered under ``name`` (raises :class:`UnknownModelError`)."""
    index = _read_index()
    if name not in index:
        known = ", ".join(sorted(index)) or "none registered"
        raise UnknownModelError(
            f"unknown model {name!r}: not a registered name or an existing directory "
            f"(registered: {known}; list them with `inspect-misalign models`)"
        )
    return index[name]


def is_registered(name: str) -> bool:
    """True if ``name`` is in the registry."""
    return name in _read_index()


def list_models() -> list[Manifest]:
    """All registered checkpoints, sorted by name."""
    index = _read_index()
    return [index[name] for name in sorted(index)]


def update_metrics(name: str, metrics: dict[str, Any], *, replace: bool = False) -> Manifest:
    """Merge ``metrics`` into a registered checkpoint's metrics (or replace them)."""
    with _locked():
        index = _read_index()
        if name not in index:
            resolve(name)  # raises the standard error
        manifest = index[name]
        merged = _jsonable(metrics) if replace else {**manifest.metrics, **_jsonable(metrics)}
        manifest = manifest.model_copy(update={"metrics": merged, "updated": _now()})
        _write_manifest(manifest)
        index[name] = manifest
        _write_index(index)
    return manifest


def unregister(name: str) -> Manifest:
    """Remove ``name`` from the index (the checkpoint and its manifest file stay on disk)."""
    with _locked():
        index = _read_index()
        if name not in index:
            resolve(name)
        manifest = index.pop(name)
        _write_index(index)
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> Manifest | None:
    """The manifest beside a checkpoint, or None if it has none."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    return Manifest.model_validate_json(path.read_text())


# --- internals ----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as ex:
        raise MisalignError(f"config and metrics must be JSON-serializable: {ex}") from None


def _adapter_config_base(directory: Path) -> str | None:
    try:
        config = json.loads((directory / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return None
    base = config.get("base_model_name_or_path")
    return str(base) if base else None


@contextmanager
def _locked() -> Iterator[None]:
    from filelock import FileLock

    home = registry_home()
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home / ".index.lock")):
        yield


def _read_index() -> dict[str, Manifest]:
    path = index_path()
    if path.exists() and not path.is_file():
        raise MisalignError(f"checkpoint index {path} is not a file; move it away (the registry rebuilds "
                            f"an empty index) or set ${HOME_ENV} to another registry")
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: Manifest.model_validate(entry) for name, entry in data["models"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as ex:
        raise MisalignError(
            f"checkpoint index {path} is unreadable ({type(ex).__name__}); fix or delete it"
        ) from None


def _write_index(index: dict[str, Manifest]) -> None:
    # called under the registry lock: a temp file of the index left here is from a killed writer
    for stale in registry_home().glob(f".{INDEX_FILE}.*.tmp"):
        stale.unlink(missing_ok=True)
    data = {"version": 1, "models": {n: index[n].model_dump(mode="json") for n in sorted(index)}}
    atomic_write_text(index_path(), json.dumps(data, indent=2) + "\n")


def _write_manifest(manifest: Manifest) -> None:
    directory = Path(manifest.path)
    if directory.is_dir():
        atomic_write_text(directory / MANIFEST_FILE, manifest.model_dump_json(indent=2) + "\n")
