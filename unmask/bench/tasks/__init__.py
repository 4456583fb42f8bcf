"""Benchmark tasks with verifiable answers; importing this package registers every built-in task."""
from __future__ import annotations

from unmask.bench.tasks import arith, code, jsonl, structured  # noqa: F401  (registration)
from unmask.bench.tasks.base import TASKS, Example, Task, get_task

__all__ = ["Example", "Task", "TASKS", "get_task"]
