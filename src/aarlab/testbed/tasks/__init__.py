"""Task registry: built-in offline tasks and reference-format directories."""

from aarlab.testbed.tasks.registry import (
    Splits,
    Task,
    TaskSpec,
    get_spec,
    load_task,
    register_task,
    split_by_entity,
    task_names,
)

__all__ = [
    "Splits",
    "Task",
    "TaskSpec",
    "get_spec",
    "load_task",
    "register_task",
    "split_by_entity",
    "task_names",
]
