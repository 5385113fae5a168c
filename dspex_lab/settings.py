"""``dspex_lab.configure``: one call for the LM, the pools and the execution backend.

    >>> import dspex_lab
    >>> dspex_lab.configure(lm="openai/gpt-4o-mini", temperature=0)          # the LM
    >>> dspex_lab.configure(pools={"general": {"size": 4}})                   # local pools
    >>> dspex_lab.configure(backend="dask", address="tcp://scheduler:8786")   # scale out
    >>> dspex_lab.configure(backend="local")                                  # and back

Each keyword group is handed to the module that owns it: ``dspex_lab.lm`` (``lm``, ``lms`` and
LM keyword arguments), ``dspex_lab.workers`` (``pools``), ``dspex_lab.distributed``
(``backend``, ``address``, ``client``), ``dspex_lab.telemetry`` (``redact_prompts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dspex_lab.errors import ConfigurationError

BACKENDS = ("local", "dask")


def configure(lm: Any = None, *, lms: Mapping[str, Any] | None = None,
              pools: Mapping[str, Mapping[str, Any] | None] | None = None,
              backend: str | None = None, address: str | None = None, client: Any = None,
              cluster: Mapping[str, Any] | None = None, redact_prompts: bool | None = None,
              embedded: Mapping[str, Any] | None = None, **lm_kwargs: Any) -> None:
    """Configure dspex_lab; only the groups you pass change.

    ``lm``/``lms``/``**lm_kwargs``: the default and named LMs (any litellm model string).
    ``pools``: ``{"name": {"size": 4, "task_timeout": 60, ...}}`` (None removes a pool).
    ``backend``: ``"local"`` (worker processes here) or ``"dask"`` (with ``address`` of a
    scheduler, a ready ``client``, or neither for a ``LocalCluster`` whose options are
    ``cluster``, e.g. ``{"n_workers": 1, "threads_per_worker": 8}``).
    ``redact_prompts``: keep prompt and response text out of telemetry.
    ``embedded``: the embedded LM's knobs, e.g. ``{"latency_ms": 200, "jitter_ms": 50,
    "error_rate": 0.1}`` (``dspex_lab.lm.config.configure_embedded``).
    """
    if backend is None and (address is not None or client is not None):
        backend = "dask"
    if backend is not None and backend not in BACKENDS:
        raise ConfigurationError(
            f"Unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}.")
    if lm is not None or lms is not None or lm_kwargs or embedded is not None:
        from dspex_lab.lm import configure as configure_lm

        configure_lm(lm, lms=lms, embedded=embedded, **lm_kwargs)
    if pools is not None:
        from dspex_lab.workers import configure_pools

        configure_pools(dict(pools))
    if backend == "dask":
        from dspex_lab.distributed import use_dask

        use_dask(client=client, address=address, **dict(cluster or {}))
    elif backend == "local":
        from dspex_lab.distributed import use_local

        use_local()
    if redact_prompts is not None:
        from dspex_lab.telemetry import get_bus

        get_bus().redact_prompts = bool(redact_prompts)
