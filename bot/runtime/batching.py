"""Micro-batching of encoder calls: messages that arrive together are encoded in one batch.

Pipeline threads each call `MicroBatcher.encode(text)` for one message. One worker thread takes the oldest
waiting text, gathers whatever else arrives until `max_batch` texts are waiting or the oldest has waited
`max_wait_ms`, encodes them together and hands every caller its own row through a future. A lone message
waits at most `max_wait_ms` (plus the encoding); during a burst, texts that arrive while a batch is being
encoded are already late and go in the next batch without further waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from bot.runtime.metrics import ENCODER_BATCH_SIZE

__all__ = ["BatcherClosedError", "MicroBatcher"]

log = logging.getLogger(__name__)


class BatcherClosedError(RuntimeError):
    """`encode` was called after `close`."""


@dataclass(slots=True)
class _Request:
    text: str
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


_STOP = object()


class MicroBatcher:
    """Encodes texts from many threads in shared batches.

    Args:
        encode_batch: the encoder's `encode`: texts -> array (len(texts), dim).
        max_batch: most texts encoded together.
        max_wait_ms: longest a text waits for others before its batch is encoded (0: only texts already
            waiting are batched together).

    The worker thread starts on the first call and is a daemon; `close` stops it after the waiting texts.
    """

    def __init__(
        self,
        encode_batch: Callable[[Sequence[str]], np.ndarray],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self._encode_batch = encode_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        # Sizes of the most recent batches, for tests, benchmarks and logs.
        self.batch_sizes: deque[int] = deque(maxlen=4096)

    def encode(self, text: str, timeout: float | None = None) -> np.ndarray:
        """Return the unit-length vector of `text`, encoded in a batch with whatever arrives with it.

        Raises:
            BatcherClosedError: the batcher was closed.
            TimeoutError: no result within `timeout` seconds.
            Exception: whatever the encoder raised for the batch.
        """
        request = _Request(text)
        with self._start_lock:
            if self._closed:
                raise BatcherClosedError("the encoder batcher is closed")
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="encoder-batcher", daemon=True)
                self._worker.start()
            self._queue.put(request)
        return request.future.result(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Encode what is waiting, then stop the worker thread. Later calls raise BatcherClosedError."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
            self._queue.put(_STOP)
        if worker is not None:
            worker.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Request] = [first]
            deadline = first.queued_at + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._encode(batch)

    def _encode(self, batch: list[_Request]) -> None:
        self.batch_sizes.append(len(batch))
        ENCODER_BATCH_SIZE.observe(len(batch))
        try:
            vectors = self._encode_batch([request.text for request in batch])
        except Exception as error:  # every caller of this batch gets the encoder's error
            log.exception("encoding a batch of %d texts failed", len(batch))
            for request in batch:
                request.future.set_exception(error)
            return
        for row, request in enumerate(batch):
            request.future.set_result(vectors[row])
