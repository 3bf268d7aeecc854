"""Population: advancing in pieces equals advancing at once and equals a sweep; replace, copy,
set_configs and (de)activate do what they say, member by member; nothing recompiles after each
operation's first use; bad input raises before any device work and changes nothing."""

import pathlib

import jax
import numpy as np
import optax
import pytest

import lrjax
import lrjax.schedules as S
from lrjax.engine import CHUNK, count_compiles

LRS = [0.02, 0.1, 0.3]


def momentum(hp):
    return optax.sgd(hp["learning_rate"], momentum=hp["momentum"])


def warmed_sgd(hp):
    # The warmup reads the member's own step count: it restarts at 0 after replace.
    return optax.sgd(S.warmup(S.constant(hp["learning_rate"]), warmup_steps=10))


CONFIGS = {"learning_rate": LRS, "momentum": [0.9, 0.5, 0.0]}


def snapshot(pop):
    """Everything observable about a population, as host arrays."""
    return {
        "params": pop.params,
        "steps": pop.steps,
        "active": pop.active,
        "diverged": pop.diverged,
        "diverged_at": pop.diverged_at,
        "configs": pop.configs,
        "clock": pop.clock,
    }


def assert_same(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


@pytest.fixture(scope="module")
def minibatch(digits):
    """A 3-configuration × 2-seed minibatch population factory sharing one compiled program set."""
    return lambda: lrjax.Population(digits, momentum, CONFIGS, batch_size=32, seeds=2, seed=4)


def test_advance_in_pieces_equals_advance_at_once_and_the_sweep(digits, minibatch):
    # 37 + 90 steps cross a chunk boundary (CHUNK = 100) and an epoch (44 batches of 32).
    assert CHUNK == 100 and digits.num_train // 32 == 44
    pieces, whole = minibatch(), minibatch()
    first, second = pieces.advance(37), pieces.advance(90)
    both = whole.advance(127)
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), both)
    assert_same(pieces.params, whole.params)
    assert_same(pieces.evaluate(), whole.evaluate())
    assert pieces.steps.tolist() == [127] * 6 and pieces.clock == 127

    swept = lrjax.sweep(digits, momentum, CONFIGS, steps=127, batch_size=32, seeds=2, seed=4, progress=False)
    np.testing.assert_array_equal(swept.train_loss, both)
    assert_same(swept.final_params, whole.params)
    result = pieces.result()
    np.testing.assert_array_equal(result.train_loss, swept.train_loss)
    assert result.eval_steps.tolist() == [127]
    assert np.isfinite(both).all() and len(np.unique(both[0])) > 100  # it trained, batch by batch


def test_replace_restarts_a_member_as_a_fresh_sweep_of_its_config(quadratic):
    # Full batch: member 3 (configuration 1, seed 1) is replaced after 20 steps; its next 30 steps
    # equal seed 1 of a fresh sweep of the new configuration (warmup included: own count from 0).
    configs = {"learning_rate": [0.01, 0.05, 0.1]}
    pop = lrjax.Population(quadratic, warmed_sgd, configs, seeds=2)
    pop.advance(20)
    untouched = pop.params
    pop.replace(3, {"learning_rate": 0.15})
    assert pop.steps.tolist() == [20, 20, 20, 0, 20, 20]
    assert pop.configs["learning_rate"].tolist() == pytest.approx([0.01, 0.01, 0.05, 0.15, 0.1, 0.1])
    fresh = lrjax.sweep(quadratic, warmed_sgd, {"learning_rate": [0.15]}, steps=30, seeds=2, progress=False)
    np.testing.assert_allclose(pop.params[3], quadratic.init(lrjax.engine.init_key(0, 2, 1)), rtol=1e-6)
    after = pop.advance(30)
    np.testing.assert_allclose(after[3], fresh.train_loss[1], rtol=1e-6)
    np.testing.assert_allclose(pop.params[3], fresh.final_params[1], rtol=1e-6)
    np.testing.assert_array_equal(pop.steps, [50, 50, 50, 30, 50, 50])
    assert not np.array_equal(untouched[2], pop.params[2])  # the others went on training


def test_copy_makes_dst_follow_src_bitwise(digits):
    pop = lrjax.Population(
        digits, momentum, {"learning_rate": [0.02, 0.1, 0.3, 0.05], "momentum": [0.9, 0.5, 0.0, 0.0]}, batch_size=32
    )
    pop.advance(25)
    pop.copy([0, 3], [1, 1])  # one source twice
    assert pop.configs["learning_rate"].tolist() == pytest.approx([0.1, 0.1, 0.3, 0.1])
    assert_same(member(pop.params, 0), member(pop.params, 1))
    losses = pop.advance(40)
    np.testing.assert_array_equal(losses[0], losses[1])
    np.testing.assert_array_equal(losses[3], losses[1])
    assert_same(member(pop.params, 0), member(pop.params, 1))
    assert not np.array_equal(losses[2], losses[1])


def test_copy_reads_before_it_writes_and_carries_steps_and_divergence(quadratic):
    pop = lrjax.Population(quadratic, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.05, 30.0, 0.1]})
    pop.advance(40)
    pop.replace(2, {"learning_rate": 0.1})
    pop.advance(3)
    before, at = pop.params, int(pop.diverged_at[1])
    assert pop.diverged.tolist() == [False, True, False] and pop.steps.tolist() == [43, at, 3]
    pop.copy([1, 2], [2, 1])  # a swap
    assert pop.diverged.tolist() == [False, False, True]
    assert pop.diverged_at.tolist() == [-1, -1, at]
    assert pop.steps.tolist() == [43, 3, at]
    np.testing.assert_array_equal(pop.params[1], before[2])
    np.testing.assert_array_equal(pop.params[2], before[1])
    assert pop.configs["learning_rate"].tolist() == pytest.approx([0.05, 0.1, 30.0])


def test_set_configs_changes_hyperparameters_and_keeps_parameters(quadratic):
    sgd = lambda hp: optax.sgd(hp["learning_rate"])
    pop = lrjax.Population(quadratic, sgd, {"learning_rate": [0.05, 0.05]})
    pop.advance(10)
    before = pop.params
    pop.set_configs([1], {"learning_rate": [0.0]})
    np.testing.assert_array_equal(pop.params, before)
    pop.advance(10)
    np.testing.assert_array_equal(pop.params[1], before[1])  # lr 0: not moving
    assert not np.array_equal(pop.params[0], before[0])
    assert pop.steps.tolist() == [20, 20]


def test_results_group_members_by_their_hyperparameters_after_copy_and_set_configs(quadratic, sgd):
    # A PBT-like step on a population with two seeds per slot: members 0 and 1 (slot 0) end up
    # with different learning rates and must never be averaged as one configuration.
    pop = lrjax.Population(quadratic, sgd, {"learning_rate": [0.01, 0.05, 0.2]}, seeds=2)
    pop.advance(10)
    pop.copy([0], [4])  # member 0 (slot 0, seed 0) takes slot 2's seed 0: learning rate 0.2
    pop.set_configs([3], {"learning_rate": [0.02]})
    pop.advance(10)
    pop.evaluate()
    result = pop.result()
    lrs = result.configs["learning_rate"]
    assert lrs.tolist() == pytest.approx([0.2, 0.01, 0.05, 0.02, 0.2, 0.2])
    groups = [m.tolist() for m in result.configurations()]
    assert groups == [[0, 4, 5], [1], [2], [3]]
    for members in groups:
        assert len(set(lrs[members].tolist())) == 1  # one configuration per group
    best = result.best()
    finals = result.final("loss")
    assert best["learning_rate"] == pytest.approx(lrs[best["members"][0]])
    assert best["loss"] == pytest.approx(finals[best["members"]].mean())
    scored = {lr: finals[lrs == lr].mean() for lr in set(lrs.tolist())}
    assert best["learning_rate"] == pytest.approx(min(scored, key=scored.get))
    search = lrjax.search.SearchResult.from_sweep(result)
    assert sorted(search.history["learning_rate"]) == pytest.approx([0.01, 0.02, 0.05, 0.2])
    figure = result.plot()
    final = figure.axes[-2] if len(figure.axes) > 2 else figure.axes[1]
    assert sorted(final.lines[0].get_xdata()) == pytest.approx([0.01, 0.02, 0.05, 0.2])


def test_inactive_members_hold_their_whole_state(digits, minibatch):
    pop, reference = minibatch(), minibatch()
    pop.advance(10), reference.advance(10)
    pop.deactivate([1, 4])
    held = pop.params
    losses = pop.advance(15)
    assert np.isnan(losses[[1, 4]]).all() and np.isfinite(losses[[0, 2, 3, 5]]).all()
    assert pop.steps.tolist() == [25, 10, 25, 25, 10, 25]
    assert_same(member(pop.params, 1), member(held, 1))
    pop.activate(1)
    # Its optimizer state (momentum) was held too: training on continues as if it had not paused
    # (batches follow the clock, so compare one step from the same state and batch).
    reference.deactivate(range(6))
    reference.advance(15)
    reference.activate(range(6))
    np.testing.assert_array_equal(pop.advance(1)[1], reference.advance(1)[1])
    assert_same(member(pop.params, 1), member(reference.params, 1))


def test_diverged_member_stops_counting_steps(quadratic):
    pop = lrjax.Population(quadratic, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.05, 30.0]})
    losses = pop.advance(200)
    assert pop.diverged.tolist() == [False, True]
    at = pop.diverged_at[1]
    assert pop.steps[1] == at and 0 < at < 200
    assert np.isnan(losses[1, at + 1 :]).all() and np.isfinite(losses[0]).all()
    assert np.isfinite(pop.params[1]).all()


def test_no_operation_recompiles_after_its_first_use(digits, minibatch):
    pop = minibatch()
    pop.advance(3), pop.evaluate(), pop.replace(0, {"learning_rate": 0.05}), pop.copy(1, 2)
    pop.set_configs(2, {"momentum": 0.8})
    rng = np.random.default_rng(0)
    with count_compiles() as log:
        for i in range(20):
            op = i % 5
            members = rng.choice(6, size=rng.integers(1, 4), replace=False)
            if op == 0:
                pop.advance(int(rng.choice([0, 1, 7, 100, 101, 230])))
            elif op == 1:
                pop.evaluate()
            elif op == 2:
                pop.replace(members, {"learning_rate": rng.uniform(0.01, 0.1, len(members))})
            elif op == 3:
                pop.copy(members, rng.choice(6, size=len(members)))
            else:
                pop.set_configs(members, {"momentum": rng.uniform(0, 0.9, len(members))})
                pop.deactivate(members[:1]), pop.activate(members[:1])
        pop.result()
        assert pop.steps.shape == (6,)
    assert log.count == 0


def unknown_member():
    return r"members must be member indices in \[0, 6\), got 6 in \[1, 6\]"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda p: p.advance(-1), ValueError, "steps must be >= 0, got -1"),
        (lambda p: p.advance(2.5), TypeError, "steps must be an integer, got 2.5"),
        (lambda p: p.replace([1, 6], {"learning_rate": [0.1, 0.1]}), ValueError, unknown_member()),
        (
            lambda p: p.replace([-1], {"learning_rate": 0.1}),
            ValueError,
            r"members must be member indices in \[0, 6\), got -1",
        ),
        (
            lambda p: p.replace([0, 0], {"learning_rate": 0.1}),
            ValueError,
            r"members must not repeat a member, got \[0, 0\]",
        ),
        (
            lambda p: p.replace([0, 1], {"learning_rate": [0.1, 0.2, 0.3]}),
            ValueError,
            r"configs\['learning_rate'\] must have one value per member \(2\), got 3",
        ),
        (
            lambda p: p.replace([0], {"lr": [0.1]}),
            ValueError,
            r"configs has unknown name 'lr'; the population's configs are \['learning_rate', 'momentum'\]",
        ),
        (
            lambda p: p.replace([0], {"learning_rate": [-0.1]}),
            ValueError,
            r"configs\['learning_rate'\] must be >= 0, got -0.1",
        ),
        (lambda p: p.set_configs([0], {"momentum": [np.nan]}), ValueError, r"configs\['momentum'\] must be finite"),
        (
            lambda p: p.set_configs([0.5], {"momentum": [0.1]}),
            ValueError,
            r"members must be a member index or a 1-D sequence of them, got \[0.5\]",
        ),
        (lambda p: p.set_configs([0], [0.1]), ValueError, r"configs must be a dict of name -> values, got \[0.1\]"),
        (lambda p: p.copy([0, 1], [2]), ValueError, "dst and src must have the same length, got 2 and 1"),
        (lambda p: p.copy([0], [9]), ValueError, r"src must be member indices in \[0, 6\), got 9"),
        (lambda p: p.deactivate([7]), ValueError, r"members must be member indices in \[0, 6\), got 7"),
    ],
)
def test_bad_input_raises_before_device_work_and_changes_nothing(minibatch, call, error, message):
    pop = minibatch()
    pop.advance(2)
    before = snapshot(pop)
    with count_compiles() as log, pytest.raises(error, match=message):
        call(pop)
    assert log.count == 0
    assert_same(snapshot(pop), before)


def test_construction_errors(digits):
    with pytest.raises(ValueError, match=r"the population needs \d+ bytes \(2 seeds × 3 configurations × \d+ bytes"):
        lrjax.Population(digits, momentum, CONFIGS, seeds=2, memory_budget=1000)
    with pytest.raises(
        ValueError, match=r"plateau_metric must be one of the task's metrics \['accuracy', 'loss'\], got 'acc'"
    ):
        lrjax.Population(digits, momentum, CONFIGS, plateau=lrjax.reduce_on_plateau(), plateau_metric="acc")
    with pytest.raises(TypeError, match="plateau must be an Optax transformation"):
        lrjax.Population(digits, momentum, CONFIGS, plateau=0.5)


def test_the_population_guides_snippet_runs_as_written(tmp_path, monkeypatch):
    section = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "guides" / "populations.md").read_text()
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(code, scope)
    result, pop = scope["result"], scope["pop"]
    assert result.train_loss.shape == (8, 500) and result.eval_metrics["loss"].shape == (8, 5)
    assert pop.clock == 500 and (tmp_path / "pbt-checkpoint").is_dir()
    final = result.eval_metrics["loss"]
    assert np.nanmax(final[:, -1]) < np.nanmax(final[:, 0])  # the worst got better by copying the best
