"""A few LiteRT interpreters for one model, lent out one caller at a time.

A TFLite Interpreter is not thread-safe, but `invoke()` releases the GIL, so a small pool lets concurrent
requests run in parallel on the available cores; callers beyond the pool size wait in line.
The most recently returned interpreter goes out first (LIFO): one request at a time keeps reusing the
same one, whose buffers are still in the CPU caches and whose XNNPACK threads are still awake.
"""

from __future__ import annotations

import os
import queue
import re
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray


def default_pool_size() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _output_order(name: str) -> tuple[str, int]:
    # "Identity", "Identity_1", …, "Identity_10": numeric suffixes sort as numbers.
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    assert match is not None
    return match.group(1), int(match.group(2) or -1)


class InterpreterPool:
    def __init__(self, model_path: Path, *, size: int | None = None, num_threads: int = 1) -> None:
        self.model_path = model_path
        self._idle: queue.LifoQueue[Interpreter] = queue.LifoQueue()
        for _ in range(size or default_pool_size()):
            interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            interpreter.allocate_tensors()
            self._idle.put(interpreter)
        sample = self._idle.queue[0]
        detail = sample.get_input_details()[0]
        self.input_index: int = detail["index"]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in detail["shape"])
        outputs = sorted(sample.get_output_details(), key=lambda d: _output_order(d["name"]))
        self.output_indices: tuple[int, ...] = tuple(d["index"] for d in outputs)
        self.output_shapes: tuple[tuple[int, ...], ...] = tuple(
            tuple(int(v) for v in d["shape"]) for d in outputs
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's NHWC input."""
        return self.input_shape[2], self.input_shape[1]

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """Outputs in the model's order (Identity, Identity_1, …), each a private copy."""
        interpreter = self._idle.get()
        try:
            interpreter.set_tensor(self.input_index, tensor)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in self.output_indices]
        finally:
            self._idle.put(interpreter)
