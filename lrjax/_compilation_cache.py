"""Compiled programs kept across processes: JAX's persistent compilation cache, switched on."""

from __future__ import annotations

import os
import pathlib

import jax

__all__ = ["enable_compilation_cache"]

# JAX writes a program to its persistent cache only if it compiled for at least this long
# (default 1 s). A sweep's programs compile in 0.05-1.5 s each on a CPU, so most would never be
# kept: lrjax lowers the threshold to 0 when it switches the cache on.
_MIN_COMPILE_SECONDS = "jax_persistent_cache_min_compile_time_secs"


def default_directory() -> pathlib.Path:
    """``$XDG_CACHE_HOME/lrjax/jax`` (``~/.cache/lrjax/jax`` when ``XDG_CACHE_HOME`` is unset or
    not absolute, as the XDG base directory specification says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = pathlib.Path(base) if os.path.isabs(base) else pathlib.Path.home() / ".cache"
    return root / "lrjax" / "jax"


def enable_compilation_cache(directory: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Keep compiled programs on disk, so another process running the same sweep loads them
    instead of compiling them again.

    This switches on JAX's persistent compilation cache (``jax_compilation_cache_dir``) for the
    whole process, for lrjax's programs and every other ``jax.jit``; importing lrjax never
    does. Call it before the first compilation (JAX decides once per process whether it uses
    the cache). A directory already set through JAX (``JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.update``) is kept unless ``directory`` is given. JAX's threshold for writing a
    program (``jax_persistent_cache_min_compile_time_secs``, 1 s) is lowered to 0 if it is at
    its default, since a sweep's programs compile in well under a second each. The cache key
    is the program, its compile options, the devices and the JAX and XLA versions, so a stale
    entry is never used. The command line calls this unless given ``--no-compilation-cache``.

    Args:
      directory: where to keep the programs; default: a directory set through JAX, else
        ``$XDG_CACHE_HOME/lrjax/jax`` (``~/.cache/lrjax/jax``).

    Returns:
      The cache directory in use.

    Example:
      >>> import jax, tempfile, lrjax
      >>> path = lrjax.enable_compilation_cache(tempfile.mkdtemp())
      >>> jax.config.jax_compilation_cache_dir == str(path)
      True
    """
    current = jax.config.values.get("jax_compilation_cache_dir")
    chosen = pathlib.Path(directory) if directory is not None else pathlib.Path(current or default_directory())
    chosen.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(chosen))
    if jax.config.values.get(_MIN_COMPILE_SECONDS) == 1.0:
        jax.config.update(_MIN_COMPILE_SECONDS, 0.0)
    return chosen
