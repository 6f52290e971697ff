"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --- models: tiny offline checkpoints (see tests/tiny.py) --------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint with a ChatML tokenizer (safetensors)."""
    from tiny import make_model

    return make_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_adapter_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two LoRA adapters of ``tiny_model_dir`` with different random, nonzero weights."""
    from tiny import make_adapter

    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_model_dir, root / f"adapter{i}", seed=i + 1) for i in range(2)]


@pytest.fixture
def misalign_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty checkpoint registry (``INSPECT_MISALIGN_HOME``) for one test."""
    home = tmp_path / "misalign_home"
    monkeypatch.setenv("INSPECT_MISALIGN_HOME", str(home))
    return home


@pytest.fixture
def misalign_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory (``XDG_CACHE_HOME``) for one test: no converted default model."""
    cache = tmp_path / "xdg_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache
