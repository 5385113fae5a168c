"""Tables between the kernel and workers: DataFrame <-> Arrow, IPC, shared memory.

    >>> from dspex_lab.exchange import to_arrow, to_pandas, split
    >>> batches = split(to_arrow(df), rows_per_batch=500)
    >>> df_back = to_pandas(batches[0])

``dspex_lab.workers.protocol`` uses this package to put tables into frames; nothing else in
dspex_lab converts between pandas and Arrow.
"""

from dspex_lab.exchange.arrow import ipc_to_table, split, table_to_ipc, to_arrow, to_pandas
from dspex_lab.exchange.shm import (
    list_segments,
    read_segment,
    sweep_segments,
    unlink_segment,
    write_segment,
)

__all__ = [
    "ipc_to_table",
    "list_segments",
    "read_segment",
    "split",
    "sweep_segments",
    "table_to_ipc",
    "to_arrow",
    "to_pandas",
    "unlink_segment",
    "write_segment",
]
