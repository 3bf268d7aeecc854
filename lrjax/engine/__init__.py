"""The vmapped, scanned, jitted training programs behind `lrjax.Population` (internal)."""

from lrjax._stream import stream_seed
from lrjax.engine import cache
from lrjax.engine.compiles import CompileLog, count_compiles
from lrjax.engine.program import (
    CHUNK,
    Layout,
    MemberState,
    PopulationState,
    Programs,
    augment_key,
    init_key,
    step_key,
)

__all__ = [
    "CHUNK",
    "CompileLog",
    "Layout",
    "MemberState",
    "PopulationState",
    "Programs",
    "augment_key",
    "cache",
    "count_compiles",
    "init_key",
    "step_key",
    "stream_seed",
]
