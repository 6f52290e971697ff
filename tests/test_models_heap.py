"""The provider freezes the long-lived heap; explicit unloads still get their memory back."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessageUser, GenerateConfig

from inspect_misalign.models import _heap, _loading
from inspect_misalign.models._provider import MisalignAPI

pytestmark = pytest.mark.usefixtures("misalign_home")


class _Cyclic:
    """An object that only the cyclic collector can free (it refers to itself)."""

    def __init__(self) -> None:
        self.me = self


def _one_generate(api: MisalignAPI) -> None:
    cfg = GenerateConfig(max_tokens=2)
    asyncio.run(api.generate([ChatMessageUser(content="hi")], [], "none", cfg))


def test_load_freezes_the_heap_unless_turned_off(tiny_model_dir: Path) -> None:
    _loading.unload_all()
    assert gc.get_freeze_count() == 0
    _one_generate(MisalignAPI(str(tiny_model_dir), gc_freeze=False))
    assert gc.get_freeze_count() == 0

    _loading.unload_all()
    freezes = _heap.FREEZES
    cyclic: Any = _Cyclic()  # alive while the weights load, so it is frozen with them
    ref = weakref.ref(cyclic)
    api = MisalignAPI(str(tiny_model_dir))
    _one_generate(api)
    assert _heap.FREEZES > freezes
    assert gc.get_freeze_count() > 0
    del cyclic
    gc.collect()
    # collections leave the frozen heap alone (its exact count is not checked: frozen objects
    # that reference counting frees, on any thread, leave it at any time)
    assert ref() is not None
    _loading.unload_all()
    assert ref() is None
    assert gc.get_freeze_count() == 0


def test_collect_all_frees_cycles_frozen_earlier() -> None:
    gc.unfreeze()
    obj: Any = _Cyclic()
    ref = weakref.ref(obj)
    _heap.freeze_heap()
    del obj
    gc.collect()
    assert ref() is not None  # frozen: the collector does not look at it
    _heap.collect_all()
    assert ref() is None
    assert gc.get_freeze_count() == 0


def test_heap_settling_pauses_the_collector_and_restores_it() -> None:
    gc.unfreeze()
    assert gc.isenabled()
    with _heap.heap_settling():
        assert not gc.isenabled()
        with _heap.heap_settling():  # the import and load threads overlap
            assert not gc.isenabled()
        assert not gc.isenabled() and gc.get_freeze_count() == 0  # frozen only at the end
    assert gc.isenabled() and gc.get_freeze_count() > 0

    gc.unfreeze()
    with pytest.raises(RuntimeError), _heap.heap_settling():
        raise RuntimeError("load failed")
    assert gc.isenabled()

    gc.disable()
    try:
        with _heap.heap_settling():
            pass
        assert not gc.isenabled()  # the user's choice is kept
    finally:
        gc.enable()

    gc.unfreeze()
    with _heap.heap_settling(enabled=False):
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_loading_starts_at_construction_and_leaves_peft_to_adapters(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    """Constructing the provider starts loading the weights in the background (before any
    ``generate``); a base-only eval never imports peft (about a second here), an adapter one does."""
    import subprocess
    import sys

    script = """
import asyncio, sys, time
from inspect_ai.model import ChatMessageUser, GenerateConfig
from inspect_misalign.models._provider import MisalignAPI
args = {"adapter": sys.argv[2]} if len(sys.argv) > 2 else {}
api = MisalignAPI(sys.argv[1], **args)
deadline = time.monotonic() + 60
while not (api._loaded is not None and api._loaded.done()) and time.monotonic() < deadline:
    time.sleep(0.05)
from inspect_misalign.models import _loading
early = _loading.BASE_LOADS
asyncio.run(api.generate([ChatMessageUser(content="hi")], [], "none", GenerateConfig(max_tokens=2)))
print("RESULT", early, _loading.BASE_LOADS, "peft" in sys.modules)
"""
    for extra, peft_expected in (([], False), ([str(tiny_adapter_dirs[0])], True)):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tiny_model_dir), *extra],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split("RESULT")[-1].split() == ["1", "1", str(peft_expected)]
