"""Streaming a run: ``PipelineStream`` yields each ``StepResult`` as its step finishes.

A background thread runs the pipeline; ``on_step`` puts results on a queue that the iterator
reads, so a notebook view (or a plain ``for`` loop) sees steps live.

    >>> for step in pipeline.stream(question="What is 2 + 3?"):
    ...     print(step.name, step.route, step.status)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from dspex_lab.pipeline.result import PipelineResult, StepResult
from dspex_lab.pipeline.run import Runner

__all__ = ["PipelineStream"]


class PipelineStream(Iterator[StepResult]):
    """Step results as they finish (a background thread runs the pipeline).

    After the last item, ``result`` holds the ``PipelineResult``; a failed run re-raises its
    ``PipelineError`` at the end of the iteration. ``close()`` cancels the remaining steps.

    >>> for step in pipeline.stream(question="2 + 3?"):
    ...     print(step.name, step.status)
    """

    _END = object()

    def __init__(self, runner: Runner, inputs: Mapping[str, Any]) -> None:
        self.result: PipelineResult | None = None
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._runner = runner
        user_callback = runner.on_step

        def on_step(res: StepResult) -> None:
            self._queue.put(res)
            if user_callback is not None:
                user_callback(res)

        runner.on_step = on_step
        runner.cancel = runner.cancel or threading.Event()
        self._thread = threading.Thread(target=self._work, args=(dict(inputs),), daemon=True,
                                        name=f"dspex-stream-{runner.name}")
        self._thread.start()

    def _work(self, inputs: dict[str, Any]) -> None:
        try:
            self.result = self._runner.run(inputs)
        except BaseException as exc:
            self.error = exc
            self.result = getattr(exc, "result", None)
        finally:
            self._queue.put(self._END)

    def __iter__(self) -> PipelineStream:
        return self

    def __next__(self) -> StepResult:
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)  # stay exhausted
            self._thread.join()
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            raise StopIteration
        return item

    def __del__(self) -> None:  # abandoned half-way: let the background run stop early
        cancel = getattr(getattr(self, "_runner", None), "cancel", None)
        if cancel is not None:
            cancel.set()

    def close(self) -> None:
        """Cancel the steps that have not started and wait for the run to end."""
        if self._runner.cancel is not None:
            self._runner.cancel.set()
        self._thread.join()

    def __enter__(self) -> PipelineStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
