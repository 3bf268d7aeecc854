"""The version matrix: lrjax on the lowest JAX it supports and on the newest.

    nox                 every session below (what `make test` and CI run)
    nox -s lowest       one of them; ``nox -s lowest -- tests/engine -x`` passes pytest arguments

- ``lowest``: Python 3.11 and the lowest version of every dependency that ``pyproject.toml``
  allows (uv's ``--resolution lowest-direct``: jax and jaxlib 0.7.0, optax 0.2.4, flax 0.10.0,
  orbax-checkpoint 0.11.17, numpy 1.26.0, ...): the whole suite.
- ``newest``: Python 3.12 and the newest releases: the whole suite.
- ``engine``: Python 3.13 and the newest releases: the engine tests (sweeps against plain
  Optax, divergence, parts, devices, rewrites, results) and the population's.
- ``docs``: Python 3.12 and the newest releases: the documentation site built with warnings as
  errors, and every code block of its pages run (``tests/docs``).

The interpreters are found on ``PATH`` as ``python3.11``, ``python3.12``, ``python3.13``; where
pyenv installed one that its shims do not expose (they run only the versions pyenv is set to),
pyenv's newest install of that version is put on ``PATH`` for the sessions.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lowest", "newest", "engine", "docs"]

PYTEST = ("pytest", "-q", "-n", "2", "--durations=10")
VERSIONS = (
    "import importlib.metadata as m, sys; print('python', sys.version.split()[0], *("
    "f'{p} {m.version(p)}' for p in ('jax', 'jaxlib', 'optax', 'flax', 'equinox', 'orbax-checkpoint', 'numpy')), sep=' | ')"
)


def _runs(executable: str) -> bool:
    return subprocess.run([executable, "-c", ""], capture_output=True).returncode == 0


def _expose_pyenv(versions: tuple[str, ...]) -> None:
    """Put pyenv's newest install of each of ``versions`` on ``PATH`` where ``python<version>``
    does not run as it is."""
    pyenv = shutil.which("pyenv")
    for version in versions:
        found = shutil.which(f"python{version}")
        if (found and _runs(found)) or pyenv is None:
            continue
        latest = subprocess.run([pyenv, "latest", version], capture_output=True, text=True).stdout.strip()
        prefix = subprocess.run([pyenv, "prefix", latest], capture_output=True, text=True).stdout.strip()
        if latest and prefix and os.path.isdir(os.path.join(prefix, "bin")):
            os.environ["PATH"] = os.path.join(prefix, "bin") + os.pathsep + os.environ["PATH"]


_expose_pyenv(("3.11", "3.12", "3.13"))


def _tests(session: nox.Session, *default: str) -> None:
    session.run("python", "-c", VERSIONS)
    session.run(*PYTEST, *(session.posargs or default))


MAIN = ("tests", "--ignore=tests/docs")  # the docs session runs the pages' code


@nox.session(python="3.11")
def lowest(session: nox.Session) -> None:
    """The whole suite on the lowest versions pyproject.toml allows."""
    session.install("--resolution", "lowest-direct", "-e", ".[test]")
    _tests(session, *MAIN)


@nox.session(python="3.12")
def newest(session: nox.Session) -> None:
    """The whole suite on the newest JAX, Optax and Flax."""
    session.install("--upgrade", "-e", ".[test]")
    _tests(session, *MAIN)


@nox.session(python="3.13")
def engine(session: nox.Session) -> None:
    """The engine and population tests on the newest releases."""
    session.install("--upgrade", "-e", ".[test]")
    _tests(session, "tests/engine", "tests/test_population.py")


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site, with warnings as errors, and every code block of its pages run."""
    session.install("--upgrade", "-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "docs", "docs/_build/html")
    _tests(session, "tests/docs")
