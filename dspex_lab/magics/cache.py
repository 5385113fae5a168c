"""``%dspex_cache [--clear]``: where the result cache is, how big, and how often it answered.

    %dspex_cache            # location, entries, size on disk, hits / misses in this kernel
    %dspex_cache --clear    # forget every cached answer (on disk too), then show the cache

    >>> cache_info().as_dict()["entries"]
    0
"""

from __future__ import annotations

from typing import Any

from dspex_lab.display import Facts

__all__ = ["cache_info"]


def cache_info(clear: bool = False) -> Facts:
    """The result cache's facts (see the module docstring); ``clear=True`` empties it first."""
    from dspex_lab.cache import get_cache

    cache = get_cache()
    cleared = 0
    if clear:
        cleared = len(cache)
        cache.clear()
    stats = cache.stats()
    path = stats["path"]
    rows: list[tuple[str, Any]] = [
        ("location", str(path) if path is not None else "memory only (DSPEX_CACHE_DIR=off)"),
        ("entries", int(stats["entries"])),
    ]
    if path is not None:
        rows.append(("size", _size(int(stats["size_bytes"]))))
    rate = stats["hit_rate"]
    rows.append(("hit rate", "no lookups yet in this kernel" if rate is None else
                 f"{rate:.0%} ({stats['hits']:,} hits, {stats['misses']:,} misses in this "
                 "kernel)"))
    if clear:
        rows.append(("cleared", f"{cleared:,} entries"))
    rows.append(("note", "shared by every kernel that uses this location; set DSPEX_CACHE_DIR "
                         "to use another, %dspex_cache --clear to empty it, --no-cache to skip "
                         "it for one call"))
    return Facts("dspex_lab result cache", rows, kind="cache")


def _size(n: int) -> str:
    """``812 bytes``, ``3.4 KB``, ``1.2 MB``..."""
    if n < 1024:
        return f"{n:,} bytes"
    value = n / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"
