"""The sweep call the engine tests share (fixtures are in tests/conftest.py)."""

import lrjax


def run(task, optimizer, configs, **kwargs):
    kwargs.setdefault("progress", False)
    return lrjax.sweep(task, optimizer, configs, **kwargs)
