"""Tables between the kernel and workers: DataFrame <-> Arrow, IPC, shared memory.

    >>> from dspex_lab.exchange import to_arrow, to_pandas, split
    >>> batches = split(to_arrow(df), rows_per_batch=500)
    >>> df_back = to_pandas(batches[0])

Modules: ``arrow`` (DataFrame <-> Arrow, IPC, split), ``values`` (Python values <-> Arrow
columns, exactly: typed Arrow where it is exact, pickled values otherwise), ``shm``
(shared-memory segments), ``objects`` (any value <-> payload bytes: Arrow for tables,
cloudpickle otherwise) and ``exceptions`` (worker exceptions <-> plain data).
``dspex_lab.workers.protocol`` uses them to build frames; nothing else in dspex_lab converts
between pandas and Arrow.

Names load lazily: importing this package (or the protocol) does not import pandas/pyarrow.
"""

from __future__ import annotations

from dspex_lab._lazy import lazy_exports

_EXPORTS = {
    "ipc_to_table": "arrow", "split": "arrow", "table_to_ipc": "arrow", "to_arrow": "arrow",
    "to_pandas": "arrow", "list_segments": "shm", "read_segment": "shm",
    "sweep_segments": "shm", "unlink_segment": "shm", "write_segment": "shm",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"dspex_lab.exchange.{module}" for name, module in _EXPORTS.items()})
