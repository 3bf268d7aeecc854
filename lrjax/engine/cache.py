"""Engine-owned caches of compiled programs, bounded, and never stored on the user's objects.

Two levels:

- **Program sets**, keyed by the task's identity, the layout, and the optimizer and plateau
  functions by `function_key`: per operation and hyperparameter signature, the compiled
  executable. A population calls these executables directly, so after an operation's first use
  it cannot recompile. A notebook cell run again writes its optimizer lambda anew with the same
  code and the same referenced values: `function_key` finds the same program set, and nothing is
  traced or compiled.
- **Executables**, keyed by a SHA-256 of the lowered StableHLO text, the argument and result
  pytree structures, the compiler options and the device ids: a new program set whose programs lower to the same HLO (a notebook cell run again
  writes the same optimizer lambda anew; a new `Task` object with the same functions and data
  shapes) pays tracing and lowering but no XLA compilation. The HLO text is the whole computation,
  so equal text means an interchangeable executable.

Both caches are least-recently-used dictionaries of bounded size (`MAX_PROGRAM_SETS`,
`MAX_EXECUTABLES`); `clear()` empties them. A third, `traced`, remembers what the host learns by
tracing a task and optimizer from shapes (the names the optimizer reads, a member's bytes), so a
new population of the same functions and config structure does not trace them again.
"""

from __future__ import annotations

import builtins
import collections
import concurrent.futures
import hashlib
import threading
import types
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import numpy as np

from lrjax._task import Task
from lrjax.engine import operations, parts, rewrite
from lrjax.engine.program import Layout, OptimizerFn, PlateauFn, Programs

MAX_PROGRAM_SETS = 16
MAX_EXECUTABLES = 64


class _LRU:
    """A thread-safe least-recently-used dictionary holding at most ``size`` entries."""

    def __init__(self, size: int):
        self.size = size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_PROGRAM_SETS = _LRU(MAX_PROGRAM_SETS)
_EXECUTABLES = _LRU(MAX_EXECUTABLES)
_TRACED = _LRU(MAX_EXECUTABLES)


def clear() -> None:
    """Forget every cached program (the next population traces and compiles afresh)."""
    _PROGRAM_SETS.clear()
    _EXECUTABLES.clear()
    _TRACED.clear()


def sizes() -> dict[str, int]:
    """How many program sets and executables the caches hold."""
    return {"program_sets": len(_PROGRAM_SETS), "executables": len(_EXECUTABLES)}


_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_BY_IDENTITY = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


def _value_key(value: Any) -> Hashable | None:
    """A key for a value a function reads: scalars by value; modules, functions and classes by
    identity (the key holds them, so an id is never reused); tuples of those element-wise; None
    for anything else (arrays, lists, dicts, other objects: their contents may change)."""
    if isinstance(value, _SCALARS):
        return type(value), value
    if isinstance(value, _BY_IDENTITY):
        return ("object", value)
    if isinstance(value, tuple):
        keys = tuple(_value_key(v) for v in value)
        return None if any(k is None for k in keys) else (type(value), keys)
    return None


def _names(code: types.CodeType) -> set[str]:
    """Names a code object and the functions nested in it may look up as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def function_key(fn: Any) -> Hashable:
    """A cache key for a function that equals another's when both compute the same thing.

    A plain Python function is keyed by its code object (bytecode, constants, names, line
    numbers; not the file name), its defaults and closure values and the globals it reads,
    each by `_value_key`: so ``lambda hp: optax.adam(hp["lr"])`` written again in a re-run cell
    gets the same key, and one reading a global ``WD = 0.1`` gets another key once ``WD``
    changes. The callees it reads (modules, functions) count by identity, as for ``jax.jit``'s
    own cache. Anything else, or a function reading a value `_value_key` cannot key, is keyed
    by itself (identity, or its own ``__eq__``)."""
    if not isinstance(fn, types.FunctionType):
        return fn
    try:
        closure = tuple(_value_key(cell.cell_contents) for cell in fn.__closure__ or ())
    except ValueError:  # an empty cell
        return fn
    scope = []
    for name in sorted(_names(fn.__code__)):
        if name in fn.__globals__:
            scope.append((name, _value_key(fn.__globals__[name])))
        elif hasattr(builtins, name):
            scope.append((name, _value_key(getattr(builtins, name))))
    defaults = _value_key(fn.__defaults__ or ())
    kwdefaults = _value_key(tuple(sorted((fn.__kwdefaults__ or {}).items())))
    parts = (closure, tuple(k for _, k in scope), (defaults,), (kwdefaults,))
    if any(k is None for part in parts for k in part):
        return fn
    return "function", fn.__code__, closure, tuple(scope), defaults, kwdefaults


def _hp_signature(hps: Any) -> Hashable:
    return jax.tree.structure(hps), tuple((x.shape, np.dtype(x.dtype).str) for x in jax.tree.leaves(hps))


def _key(name: str, hps: Any, eval_data: Any) -> Hashable:
    """What an operation is compiled for: its hyperparameters' signature and, for
    ``evaluate``, its data's (a streamed eval set has a full and a partial last batch)."""
    return name, _hp_signature(hps), _hp_signature(eval_data) if name == "evaluate" else None


class ProgramSet:
    """The compiled operations of one `Programs`: ``init``, ``reset``, ``chunk``, ``evaluate``,
    ``observe`` and ``copy``, each compiled once per hyperparameter signature (``evaluate``
    once per shape of its data too)."""

    def __init__(self, programs: Programs):
        self.programs = programs
        self._compiled: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._part: Programs | None = None

    def _part_programs(self) -> Programs:
        """The programs of one part of the layout (`lrjax.engine.parts`): only their chunk runs."""
        if self._part is None:
            p = self.programs
            self._part = Programs(p.task, p.optimizer, p.plateau, parts.part_layout(p.layout))
        return self._part

    def ensure(self, names: Sequence[str], hps: Any, keys: jax.Array, train_data: Any, eval_data: Any) -> None:
        """Compile the operations ``names`` for hyperparameters like ``hps`` unless compiled.

        Lowering (tracing) runs in this thread, in the order given; executables found in neither
        cache are compiled by XLA in worker threads (it releases the GIL), so the first, slowest
        program compiles while the next ones are traced. Evaluation reads only the task's
        parameters and data, so its executable is shared by every program set of a task and
        layout, whatever the optimizer: a new optimizer does not even trace it."""
        missing = [n for n in names if _key(n, hps, eval_data) not in self._compiled]
        if not missing:
            return
        p = self.programs
        state = p.state_shapes(hps)
        with concurrent.futures.ThreadPoolExecutor() as pool:
            jobs: dict[str, dict[str, tuple[list, Any]]] = {}
            for name in missing:
                shared = (name, _hp_signature(eval_data), p.task, p.layout, p.rewrites) if name == "evaluate" else None
                found = _EXECUTABLES.get(shared) if shared else None
                if found is not None:
                    jobs[name] = {name: ([], found)}
                    continue
                jobs[name] = {}
                for piece, (fn, args, compile_options) in operations.pieces(
                    p, self._part_programs, name, state, hps, keys, train_data, eval_data
                ).items():
                    lowered = fn.lower(*args)
                    key = hlo_key(lowered, compile_options, p.layout.devices)
                    found = _EXECUTABLES.get(key) if key is not None else None
                    cache_keys = [k for k in (key, shared) if k is not None]
                    jobs[name][piece] = (cache_keys, found if found is not None else pool.submit(lowered.compile))
            for name, pieces in jobs.items():
                compiled = {}
                for piece, (cache_keys, job) in pieces.items():
                    compiled[piece] = job.result() if isinstance(job, concurrent.futures.Future) else job
                    for key in cache_keys:
                        _EXECUTABLES.put(key, compiled[piece])
                whole = compiled[name] if len(compiled) == 1 else parts.PartedChunk(**compiled)
                with self._lock:
                    self._compiled[_key(name, hps, eval_data)] = whole

    def __call__(self, name: str, hps: Any, *args: Any) -> Any:
        """Run the compiled operation ``name`` (see `ensure`) for hyperparameters like ``hps``
        (``evaluate``: and data like its last argument)."""
        return self._compiled[_key(name, hps, args[-1] if args else None)](*args)

    def compiled(self, name: str, hps: Any, eval_data: Any = None) -> bool:
        """Whether operation ``name`` is compiled for hyperparameters like ``hps`` (``evaluate``:
        and data like ``eval_data``)."""
        return _key(name, hps, eval_data) in self._compiled

    def executable(self, name: str, hps: Any, eval_data: Any = None) -> Any:
        """The compiled executable (``jax.stages.Compiled``) of operation ``name``, e.g. for
        its ``memory_analysis()``."""
        return self._compiled[_key(name, hps, eval_data)]


def hlo_key(lowered: Any, options: dict, devices: Sequence[Any]) -> Hashable | None:  # jax.Device
    """What decides the executable of ``lowered``: its StableHLO text, the values of the
    constants JAX passes beside the arguments (`hidden_constants`), argument and result pytree
    structures (which the executable checks and the text lacks), compiler options and devices.
    None (no sharing, with a warning once) when this JAX does not say which constants it passes."""
    constants = hidden_constants(lowered)
    if constants is None:
        rewrite.warn_once(
            "hidden constants",
            f"lrjax: cannot tell which constants JAX {jax.__version__} passes to a compiled program "
            "beside its arguments; programs that lower to the same text are compiled again "
            "instead of shared (slower, the same results).",
        )
        return None
    digest = hashlib.sha256(lowered.as_text().encode())
    for c in constants:
        c = np.asarray(c)
        digest.update(f"{c.dtype.str}{c.shape}".encode())
        digest.update(np.ascontiguousarray(c).tobytes())
    ids = tuple(d.id for d in devices)
    return digest.hexdigest(), str(lowered.in_tree), str(lowered.out_tree), tuple(sorted(options.items())), ids


def hidden_constants(lowered: Any) -> Sequence[Any] | None:
    """The constants a lowered program receives beside its arguments (not in its HLO text), or
    None when this JAX does not say.

    With ``jax_use_simplified_jaxpr_constants`` on, JAX hoists a traced function's large
    constants out of the HLO into arguments and lists them as ``const_args`` of the lowering
    (JAX 0.7.1 and later); with it off, or on a JAX without the flag, every constant is written
    into the text."""
    const_args = getattr(getattr(lowered, "_lowering", None), "const_args", None)
    if const_args is not None:
        return list(const_args)
    return None if _hoists_constants() else []


def _hoists_constants() -> bool:
    """Whether this JAX is set to pass large constants beside the arguments."""
    return bool(jax.config.values.get("jax_use_simplified_jaxpr_constants", False))


def traced(what: str, task: Task, optimizer: OptimizerFn, plateau: Any, hp: Any, compute: Callable[[], Any]) -> Any:
    """``compute()``, remembered under (``what``, task identity, `function_key` of the optimizer
    and plateau, the structure, shapes and dtypes of one member's ``hp``): for facts that follow
    from tracing alone, never from the values. An exception is not remembered."""
    key = (what, task, function_key(optimizer), function_key(plateau), _hp_signature(hp))
    return _kept(_TRACED, key, compute)


def _kept(lru: _LRU, key: Hashable, build: Callable[[], Any]) -> Any:
    """``lru``'s value for ``key``, built (and kept) if it has none."""
    found = lru.get(key)
    if found is None:
        found = build()
        lru.put(key, found)
    return found


def program(key: Hashable, build: Callable[[], Any]) -> Any:
    """A program outside a population's (e.g. the gradient noise scale's jitted function):
    ``build()``, kept in the engine's bounded program cache under ``key``, which `clear`
    empties. ``key`` holds what the program depends on (the task by identity, sizes)."""
    return _kept(_PROGRAM_SETS, ("program", key), build)


def program_set(task: Task, optimizer: OptimizerFn, plateau: PlateauFn | None, layout: Layout) -> ProgramSet:
    """The cached program set for (task, optimizer, plateau, layout, whether rewrites are
    `lrjax.engine.rewrite.enabled`); built on first use. The optimizer and plateau are keyed by
    `function_key`."""
    key = (task, function_key(optimizer), function_key(plateau), layout, rewrite.enabled())
    return _kept(_PROGRAM_SETS, key, lambda: ProgramSet(Programs(task, optimizer, plateau, layout)))
