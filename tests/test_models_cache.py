"""Atomic cache publishing, the default model's location, the thread settings."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspect_misalign.models import _default, _threads
from inspect_misalign.models._publish import (
    MARKER,
    CorruptedCacheError,
    directory_state,
    publish_atomically,
)
from inspect_misalign.models._resolve import resolve_checkpoint


def _fake_converter(calls: list[str], fail_after_first_file: bool = False, delay: float = 0.0):
    def build(tmp: Path) -> None:
        calls.append(threading.current_thread().name)
        (tmp / "config.json").write_text("{}")
        if fail_after_first_file:
            raise RuntimeError("interrupted halfway")
        time.sleep(delay)
        (tmp / "model.safetensors").write_bytes(b"x" * 1000)

    return build


def test_interrupted_conversion_leaves_no_cache(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="interrupted"):
        publish_atomically(target, _fake_converter(calls, fail_after_first_file=True))
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []
    # a later run converts normally
    publish_atomically(target, _fake_converter(calls))
    assert directory_state(target)[0] == "complete"


def test_concurrent_conversions_build_once(tmp_path: Path) -> None:
    target = tmp_path / "model"
    calls: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            publish_atomically(target, _fake_converter(calls, delay=0.3))
        except BaseException as ex:  # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=worker, name=f"t{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(calls) == 1
    assert directory_state(target)[0] == "complete"
    assert (target / "model.safetensors").stat().st_size == 1000


def test_stale_temp_dir_is_cleaned(tmp_path: Path) -> None:
    target = tmp_path / "model"
    stale = tmp_path / ".model.tmp-dead"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    publish_atomically(target, _fake_converter([]))
    assert not stale.exists()


def test_corrupted_cache_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "model"
    publish_atomically(target, _fake_converter([]))
    (target / "model.safetensors").write_bytes(b"short")  # truncated
    with pytest.raises(CorruptedCacheError) as info:
        publish_atomically(target, _fake_converter([]))
    message = str(info.value)
    assert "wrong size" in message and "delete it" in message and "\n" not in message
    (target / MARKER).unlink()
    assert directory_state(target)[0] == "corrupted"


def test_default_model_location(misalign_cache: Path) -> None:
    expected = misalign_cache / "inspect_misalign" / "default-smollm2-135m"
    assert _default.default_model_dir() == expected
    gguf = _default.default_gguf_path()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.is_file()
    resolved = resolve_checkpoint("default")  # no conversion happens here
    assert resolved.is_default and resolved.base_dir == expected
    assert not expected.exists()


def test_corrupted_default_cache_error(misalign_cache: Path) -> None:
    broken = _default.default_model_dir()
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    with pytest.raises(CorruptedCacheError) as info:
        resolve_checkpoint("default")
    assert "rm -rf" in str(info.value) and "\n" not in str(info.value)


def test_threads_request_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_threads.THREADS_ENV, raising=False)
    assert _threads.requested_threads() is None
    monkeypatch.setenv(_threads.THREADS_ENV, "3")
    assert _threads.requested_threads() == 3
    assert _threads.requested_threads(1) == 1
    with pytest.raises(ValueError, match="positive integer"):
        _threads.requested_threads("many")
    import torch

    before = torch.get_num_threads()
    try:
        assert _threads.configure_threads(1) == 1
    finally:
        torch.set_num_threads(before)


def test_light_imports() -> None:
    code = (
        "import os, sys; os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "import inspect_misalign.models._provider_registry, inspect_misalign.models\n"
        "import inspect_misalign.models._provider, inspect_misalign.cli.models\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'OMP_WAIT_POLICY' not in os.environ  # set only where models run: tests/test_omp_policy.py\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
