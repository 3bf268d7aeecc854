"""The engine on a JAX it was not written for: compile options the backend does not know are
dropped, a rewrite that meets a form it does not know falls back to the plain computation,
``LRJAX_REWRITES=0`` turns every rewrite off; each with the same results and one warning."""

import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import source_info_util

import lrjax
from lrjax.engine import cache, dots, operations, options, rewrite
from lrjax.engine.conv import has_convs
from lrjax.engine.sink import sink_transposes
from tests.engine.conftest import run

CONFIGS = {"learning_rate": [0.01, 0.05, 0.2]}


@pytest.fixture
def fresh(monkeypatch):
    """Fresh engine caches, no warning given yet and no option known yet (restored after)."""
    monkeypatch.setattr(rewrite, "_warned", set())
    monkeypatch.setattr(options, "_known", {})
    cache.clear()
    yield
    cache.clear()


def _ours(record, text):
    return [w for w in record if text in str(w.message)]


def _plain(task, optimizer, monkeypatch, **kwargs):
    """The sweep with every rewrite off: the user's computation as written."""
    with monkeypatch.context() as m:
        m.setenv("LRJAX_REWRITES", "0")
        return run(task, optimizer, CONFIGS, **kwargs)


def test_an_unknown_compile_option_is_dropped_with_one_warning(digits, adam, sgd, fresh, monkeypatch):
    monkeypatch.setattr(operations, "CHUNK_OPTIONS", {**operations.CHUNK_OPTIONS, "xla_cpu_lrjax_no_such_option": True})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = run(digits, adam, CONFIGS, steps=30, batch_size=32)
        run(digits, sgd, CONFIGS, steps=5, batch_size=32)  # compiles another chunk: no second warning
    dropped = _ours(record, "xla_cpu_lrjax_no_such_option")
    assert len(dropped) == 1 and "does not accept" in str(dropped[0].message)
    plain = _plain(digits, adam, monkeypatch, steps=30, batch_size=32)
    np.testing.assert_allclose(result.train_loss, plain.train_loss, rtol=1e-5, atol=1e-6)
    assert np.all(result.train_loss[:, -1] < result.train_loss[:, 0])  # it trained


def test_an_option_a_newer_xla_retired_is_dropped_without_a_warning(monkeypatch):
    # jaxlib 0.12 has no xla_cpu_use_fusion_emitters: its new fusion emitters are the only ones.
    monkeypatch.setattr(options, "RETIRED", {"xla_cpu_lrjax_retired_option"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = options.supported({"xla_cpu_lrjax_retired_option": True}, jax.devices("cpu")[0])
    assert kept == {}


def test_options_the_backend_knows_are_kept():
    device = jax.devices("cpu")[0]
    known = {"xla_backend_optimization_level": 1}
    assert options.supported(known, device) == known


def test_a_rewrite_meeting_a_form_it_does_not_know_falls_back_to_the_plain_computation(
    digits, adam, sgd, fresh, monkeypatch
):
    # The matmul rule offered every equation (tanh, exp, ...): it reads parameters they lack.
    monkeypatch.setattr(dots, "_wanted", lambda eqn: True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = run(digits, adam, CONFIGS, steps=30, batch_size=32)
        run(digits, sgd, CONFIGS, steps=5, batch_size=32)
    fallbacks = _ours(record, "matmul layout rewrite could not evaluate")
    assert len(fallbacks) == 1
    plain = _plain(digits, adam, monkeypatch, steps=30, batch_size=32)
    np.testing.assert_allclose(result.train_loss, plain.train_loss, rtol=1e-5, atol=1e-6)
    assert np.all(result.train_loss[:, -1] < result.train_loss[:, 0])


def test_an_error_of_the_users_own_is_not_swallowed_by_a_rewrite():
    def broken(x):
        return jnp.dot(x, jnp.ones((3, 2)))  # x is (2, 2): the user's shape error

    with pytest.raises(TypeError, match="dot_general"):
        dots.canonical_dots(broken)(jnp.ones((2, 2)))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_rewrites_off_and_on_agree(digits, optimizer, request, monkeypatch):
    """Within 1e-5: losses entry by entry, parameters in norm (float32 summation order differs
    between the rewritten and the plain matmuls, and an entry near zero has no meaningful
    relative error)."""
    opt = request.getfixturevalue(optimizer)
    on = run(digits, opt, CONFIGS, steps=40, batch_size=32, seeds=2)
    off = _plain(digits, opt, monkeypatch, steps=40, batch_size=32, seeds=2)
    np.testing.assert_allclose(on.train_loss, off.train_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(on.final_params), jax.tree.leaves(off.final_params), strict=True):
        assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(b)


def test_rewrites_off_trace_the_users_computation_as_written(digits, adam, monkeypatch):
    from lrjax.engine.program import Layout, Programs

    layout = Layout(1, 1, 32, tuple(jax.local_devices()[:1]))
    monkeypatch.setenv("LRJAX_REWRITES", "0")
    assert not Programs(digits, adam, None, layout).rewrites
    monkeypatch.setenv("LRJAX_REWRITES", "1")
    assert Programs(digits, adam, None, layout).rewrites


def test_off_the_cpu_the_users_loss_is_not_rewritten(digits, adam, monkeypatch):
    """The rewrites were measured on XLA:CPU only (on a GPU the convolution rewrite would take
    the place of cuDNN at k² times the memory): a layout on another platform keeps the task's
    own loss and metrics, and the chunk compiles with no CPU options."""
    from lrjax.engine.program import Layout, Programs

    task = lrjax.datasets.digits_cnn()
    layout = Layout(1, 1, 32, tuple(jax.local_devices()[:1]))
    params = jax.eval_shape(task.init, jax.random.key(0))
    batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((32, *x.shape[1:]), x.dtype), task.train_data)

    def convolves(programs):
        return has_convs(jax.make_jaxpr(programs._loss)(params, None, batch, None).jaxpr)

    monkeypatch.setattr(Layout, "on_cpu", property(lambda self: False))
    elsewhere = Programs(task, adam, None, layout)
    assert not elsewhere.rewrites and convolves(elsewhere)  # XLA's own convolutions
    monkeypatch.undo()
    on_cpu = Programs(task, adam, None, layout)
    assert on_cpu.rewrites and not convolves(on_cpu)  # as slices and a matmul


def _user_step(w, x):  # the line the rewritten equations must name
    return jnp.tanh(x @ w).sum()


def test_rewritten_equations_keep_the_users_source_line():
    w, x = jnp.ones((3, 2)), jnp.ones((4, 3))
    grad = jax.grad(_user_step)
    jaxpr = jax.make_jaxpr(sink_transposes(dots.canonical_dots(grad)))(w, x).jaxpr
    tanh = [e for e in jaxpr.eqns if e.primitive.name == "tanh"]
    assert tanh and "test_compat.py" in source_info_util.summarize(tanh[0].source_info)
    text = jax.jit(sink_transposes(dots.canonical_dots(grad))).lower(w, x).as_text(debug_info=True)
    assert "test_compat.py" in text


HOISTED = """
import jax, jax.numpy as jnp, numpy as np
from lrjax.engine import cache
x, devices = jnp.ones(3000), jax.devices("cpu")[:1]
first = np.arange(3000.0, dtype=np.float32)
lower = lambda c: jax.jit(lambda x: x + c).lower(x)
a, b, again = lower(first), lower(first[::-1].copy()), lower(first.copy())
if cache.hidden_constants(a) is None:  # JAX 0.7.0: the flag, but no list of what it hoists
    assert cache.hlo_key(a, {}, devices) is None
    print("not shared")
else:
    assert len(cache.hidden_constants(a)) == 1 and a.as_text() == b.as_text()
    assert cache.hlo_key(a, {}, devices) != cache.hlo_key(b, {}, devices)
    assert cache.hlo_key(a, {}, devices) == cache.hlo_key(again, {}, devices)
    print("keyed by value")
"""


def test_hidden_constants_enter_the_executable_key():
    """With JAX hoisting constants out of the HLO (a flag read when JAX starts), two programs
    of the same text and other constants get other executables (or, where JAX does not list
    the constants it hoists, none is shared)."""
    if "jax_use_simplified_jaxpr_constants" not in jax.config.values:
        lowered = jax.jit(lambda x: x + np.arange(3000.0)).lower(jnp.ones(3000))
        assert cache.hidden_constants(lowered) == []  # this JAX writes every constant into the text
        return
    env = dict(os.environ, JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS="1", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", HOISTED], env=env, capture_output=True, text=True, timeout=300)
    newer = hasattr(getattr(jax.jit(lambda x: x).lower(1.0), "_lowering", None), "const_args")
    expected = "keyed by value" if newer else "not shared"
    assert proc.returncode == 0 and expected in proc.stdout, proc.stdout + proc.stderr


def test_executables_are_not_shared_when_jax_does_not_say_which_constants_it_passes(monkeypatch):
    class Lowered:  # a JAX whose lowering has no ``const_args``
        _lowering = object()

        def as_text(self):
            return "module"

    monkeypatch.setattr(rewrite, "_warned", set())
    monkeypatch.setattr(cache, "_hoists_constants", lambda: True)
    with pytest.warns(RuntimeWarning, match="compiled again instead of shared"):
        assert cache.hlo_key(Lowered(), {}, jax.devices("cpu")[:1]) is None
