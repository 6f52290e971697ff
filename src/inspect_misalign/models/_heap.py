"""Keep Python's cyclic garbage collector off the long-lived heap of an eval process.

Importing torch, transformers, peft and Inspect and loading a model leaves ~400-600 thousand
objects that live until the process exits. Every full (generation 2) collection walks all of
them: 0.1-0.4 s each on the 2-core development machine, about ten per eval (most while the
imports and the weight load run), and once more with the teardown of everything when the
interpreter exits (~2 s from the last ``atexit`` handler to the end of the process, against
~0.4 s with the heap frozen). So the provider pauses the collector while it imports and loads
(:func:`heap_settling`) and then moves every object alive into the collector's permanent
generation (``gc.freeze()``, as model servers such as vLLM and SGLang do after loading weights):
later collections skip them, objects freed by reference counting are still freed at once, and
only cyclic garbage that already exists at that moment stays until exit.

``-M gc_freeze=false`` turns both off; ``benchmarks/bench_gc_freeze.py`` measures the whole-eval
effect. Code that drops a model and wants its memory back at once calls :func:`collect_all`,
which unfreezes first (``unload_all`` and the training code do).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FREEZES = 0
"""How many times the heap was frozen in this process."""

_lock = threading.Lock()
_settling = 0
_was_enabled = True


def freeze_heap(enabled: bool = True) -> int:
    """Move every object alive now out of the collector's reach (if ``enabled``); return the count frozen."""
    global FREEZES
    if enabled:
        gc.freeze()
        FREEZES += 1
    return gc.get_freeze_count()


@contextmanager
def heap_settling(enabled: bool = True) -> Iterator[None]:
    """Pause the collector while long-lived objects are created (imports, weights), then freeze.

    Nested and concurrent uses (the import and load threads) share one pause; the heap is frozen
    and the collector restored to its earlier state when the last one ends, even on error.
    """
    global _settling, _was_enabled
    if not enabled:
        yield
        return
    with _lock:
        if _settling == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _settling += 1
    try:
        yield
    finally:
        with _lock:
            _settling -= 1
            if _settling == 0:
                freeze_heap()
                if _was_enabled:
                    gc.enable()


def collect_all() -> int:
    """Unfreeze the heap and run a full collection (frees cycles frozen earlier); return the count freed."""
    gc.unfreeze()
    return gc.collect()
