"""The vmapped, scanned, jitted training program behind `lrjax.sweep` (internal)."""

from lrjax.engine.compiles import CompileLog, count_compiles
from lrjax.engine.program import Layout, MemberState, Programs, init_key
from lrjax.engine.run import DEFAULT_MEMORY_BUDGET, group_size, run

__all__ = ["CompileLog", "DEFAULT_MEMORY_BUDGET", "Layout", "MemberState", "Programs", "count_compiles", "group_size", "init_key", "run"]
