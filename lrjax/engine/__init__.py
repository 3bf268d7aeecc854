"""The engine behind `lrjax.Population`: vmapped, scanned, jitted training programs.

Public, and as stable as the rest of lrjax, are the names below (in ``__all__`` and the API
reference): what a user needs to reproduce a member's randomness outside lrjax (its keys and
its stream's seed) and to check that nothing recompiles. The submodules (``program``,
``plan``, ``cache``, ``parts``, the jaxpr rewrites, ...) are internal: lrjax's own modules are
their only callers, and they change in any release without notice.
"""

from lrjax._stream import stream_seed
from lrjax.engine.compiles import CompileLog, count_compiles
from lrjax.engine.program import CHUNK, augment_key, init_key, step_key

__all__ = [
    "CHUNK",
    "CompileLog",
    "augment_key",
    "count_compiles",
    "init_key",
    "step_key",
    "stream_seed",
]
