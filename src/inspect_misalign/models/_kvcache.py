"""A KV cache whose rows can leave and join between decode steps, with in-place appends.

:class:`RowCache` is a transformers ``DynamicCache`` (models accept it as ``past_key_values``)
whose layers keep their keys and values in buffers with spare room along the sequence axis, so a
decode step writes its new position in place instead of concatenating the whole cache (which
``DynamicCache`` does at every step). Between steps, :meth:`RowCache.rebuild` drops rows, cuts left
columns that no row attends to any more, and appends the rows of another cache (the shorter side
left-padded with zeros), in one copy. Padded positions are masked by the caller's attention mask.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

SPARE = 64
"""Room added along the sequence axis whenever a layer's buffer grows."""


class BufferLayer(DynamicLayer):
    """A cache layer that appends in place into a buffer with spare room."""

    def __init__(self) -> None:
        super().__init__()
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``key_states``/``value_states`` and return the whole cached keys and values."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.set(key_states, value_states)
            return self.keys, self.values
        end = self.length + key_states.shape[-2]
        assert self._keys is not None and self._values is not None
        if end > self._keys.shape[-2]:
            self.set(self.keys, self.values, room=end - self.length)
            assert self._keys is not None and self._values is not None
        self._keys[:, :, self.length : end].copy_(key_states)
        self._values[:, :, self.length : end].copy_(value_states)
        self._expose(end)
        return self.keys, self.values

    def set(self, keys: torch.Tensor, values: torch.Tensor, room: int = 0) -> None:
        """Replace the contents with ``keys``/``values`` (copied into a new buffer)."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        batch, heads, length, dim = keys.shape
        size = length + max(room, SPARE)
        self._keys = keys.new_zeros(batch, heads, size, dim)
        self._values = values.new_zeros(batch, heads, size, values.shape[-1])
        self._keys[:, :, :length].copy_(keys)
        self._values[:, :, :length].copy_(values)
        self._expose(length)

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """Use ``keys``/``values`` (buffers whose first ``length`` positions are filled) as is."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        self._keys, self._values = keys, values
        self._expose(length)

    def _expose(self, length: int) -> None:
        assert self._keys is not None and self._values is not None
        self.length = length
        self.keys = self._keys[:, :, :length]
        self.values = self._values[:, :, :length]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices``."""
        if self.length:
            self.set(self.keys[indices], self.values[indices])

    def crop(self, max_length: int) -> None:
        """Keep the first ``max_length`` positions (negative: drop that many from the end)."""
        if max_length < 0:
            max_length = self.length + max_length
        if 0 <= max_length < self.length:
            self._expose(max_length)


class RowCache(DynamicCache):
    """A ``DynamicCache`` of :class:`BufferLayer` s for continuous batching."""

    def __init__(self, num_layers: int) -> None:
        Cache.__init__(self, layers=[BufferLayer() for _ in range(num_layers)])

    @property
    def buffer_layers(self) -> list[BufferLayer]:
        """The layers, typed."""
        return [layer for layer in self.layers if isinstance(layer, BufferLayer)]

    def rebuild(self, rows: list[int], trim: int = 0, other: RowCache | None = None) -> None:
        """Keep ``rows`` (in that order) without their first ``trim`` positions, then append the
        rows of ``other`` below them, left-padding the shorter side with zeros; one copy per layer."""
        index = torch.tensor(rows, dtype=torch.long, device=self._device())
        theirs = other.buffer_layers if other is not None else [None] * len(self.layers)
        for layer, new in zip(self.buffer_layers, theirs, strict=True):
            keys = [layer.keys[index, :, trim:]] if rows else []
            values = [layer.values[index, :, trim:]] if rows else []
            if new is not None:
                keys.append(new.keys)
                values.append(new.values)
            layer.adopt(*_stack_left_padded(keys, values))

    def _device(self) -> torch.device:
        first = self.buffer_layers[0]
        return first.keys.device if first.is_initialized else torch.device("cpu")


def _stack_left_padded(
    keys: list[torch.Tensor], values: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack row blocks along the batch axis, each right-aligned on the longest one, into new
    buffers with :data:`SPARE` free positions; returns (keys, values, used length)."""
    length = max(part.shape[-2] for part in keys)
    rows = sum(part.shape[0] for part in keys)
    out_keys = keys[0].new_zeros(rows, keys[0].shape[1], length + SPARE, keys[0].shape[-1])
    out_values = values[0].new_zeros(rows, values[0].shape[1], length + SPARE, values[0].shape[-1])
    start = 0
    for part_keys, part_values in zip(keys, values, strict=True):
        stop = start + part_keys.shape[0]
        offset = length - part_keys.shape[-2]
        out_keys[start:stop, :, offset:length].copy_(part_keys)
        out_values[start:stop, :, offset:length].copy_(part_values)
        start = stop
    return out_keys, out_values, length


def supports_row_cache(model_config: Any) -> bool:
    """True if every layer of the model keeps a plain full-attention cache (no sliding window)."""
    try:
        cache = DynamicCache(config=model_config)
    except Exception:  # noqa: BLE001 - unknown configs simply use the batch path
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)
