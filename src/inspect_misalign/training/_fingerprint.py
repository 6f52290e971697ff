"""Identity of a checkpoint by content, with the weight hashes cached so repeated builds stay fast.

Two fine-tunes of one architecture have the same ``config.json`` and weight-file sizes, so only the
weights' bytes tell them apart. Hashing a few hundred MB takes seconds; the hash of each file is
kept in ``<cache root>/file_hashes.json`` keyed by the resolved path and reused while the file's
size and ``mtime_ns`` are unchanged. A file modified less than ``RACY_NS`` before it was hashed is
not cached, since a second write within the file system's timestamp resolution could keep its size
and mtime (git's "racy clean" rule). The cache file is rewritten atomically; two processes updating
it at once can only lose an entry (recomputed next time), never corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from inspect_misalign._atomic import atomic_write_text

HASH_CACHE_NAME = "file_hashes.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
RACY_NS = 2_000_000_000


def hash_cache_file() -> Path:
    """Where file hashes are cached: ``file_hashes.json`` under the project's cache root."""
    from inspect_misalign.models import cache_root

    return cache_root() / HASH_CACHE_NAME


def file_sha256(path: Path, cache_file: Path | None = None) -> str:
    """SHA-256 of a file's bytes, read from / written to the hash cache keyed by path, size and mtime."""
    cache_file = cache_file or hash_cache_file()
    resolved = path.resolve()
    stat = resolved.stat()
    signature = (stat.st_size, stat.st_mtime_ns)
    key = str(resolved)
    entry = _read_cache(cache_file).get(key)
    if isinstance(entry, dict) and (entry.get("size"), entry.get("mtime_ns")) == signature:
        return str(entry["sha256"])
    with resolved.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    after = resolved.stat()
    settled = time.time_ns() - after.st_mtime_ns > RACY_NS
    if settled and (after.st_size, after.st_mtime_ns) == signature:
        cache = _read_cache(cache_file)  # re-read: another process may have added entries meanwhile
        cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        try:
            atomic_write_text(cache_file, json.dumps(cache, indent=0, sort_keys=True))
        except OSError:
            pass  # a read-only cache only costs speed
    return digest


def checkpoint_fingerprint(base_dir: Path, cache_file: Path | None = None) -> str:
    """Identity of a checkpoint directory: its config and the names and content hashes of its weights."""
    h = hashlib.sha256((base_dir / "config.json").read_bytes())
    files = sorted({file for pattern in WEIGHT_PATTERNS for file in base_dir.glob(pattern)})
    for file in files:
        h.update(f"{file.name}:{file_sha256(file, cache_file)}".encode())
    return h.hexdigest()[:16]


def _read_cache(cache_file: Path) -> dict[str, object]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
