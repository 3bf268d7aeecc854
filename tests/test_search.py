"""`lrjax.search`: spaces, successive halving and Hyperband (exact promotions, utilization),
population-based training (bitwise exploits, lineage), Bayesian rounds through Optuna (one
compile, resume after SIGKILL), and bad input."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import optax
import pytest

import lrjax
import lrjax.schedules as S
from lrjax.engine import cache, count_compiles
from lrjax.search import (
    bayesian,
    choice,
    hyperband,
    int_uniform,
    log_uniform,
    pbt,
    random,
    successive_halving,
    uniform,
)
from lrjax.search._halving import brackets, rungs

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SGD = lambda hp: optax.sgd(hp["learning_rate"])
MOMENTUM = lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"])
LR = {"learning_rate": log_uniform(1e-3, 1.0)}


@pytest.fixture(scope="module")
def regression():
    return lrjax.datasets.linear_regression(128, noise=0.3)


# -- spaces ----------------------------------------------------------------------------------


def test_random_draws_within_ranges_and_each_name_from_its_own_stream():
    space = {"learning_rate": log_uniform(1e-5, 1.0), "momentum": uniform(0.5, 0.99), "width": int_uniform(2, 4)}
    configs = random(space, 4000, seed=3)
    lr, momentum, width = configs["learning_rate"], configs["momentum"], configs["width"]
    assert lr.min() >= 1e-5 and lr.max() <= 1.0 and momentum.min() >= 0.5 and momentum.max() <= 0.99
    assert set(width.tolist()) == {2, 3, 4} and width.dtype == np.int32
    # log-uniform: each of the five decades holds a fifth of the draws (4000 draws: ± 3 sd)
    per_decade = np.histogram(np.log10(lr), bins=5, range=(-5, 0))[0] / 4000
    np.testing.assert_allclose(per_decade, 0.2, atol=3 * math.sqrt(0.2 * 0.8 / 4000))
    # adding a hyperparameter leaves the others' draws as they were
    more = random({**space, "weight_decay": log_uniform(1e-6, 1e-2)}, 4000, seed=3)
    np.testing.assert_array_equal(more["learning_rate"], lr)
    assert not np.array_equal(random(space, 4000, seed=4)["learning_rate"], lr)


def test_a_choice_of_schedules_is_a_stacked_schedule_for_sweep(regression):
    schedules = [S.cosine_decay(0.1, decay_steps=50), S.cosine_decay(0.3, decay_steps=20)]
    configs = random({"learning_rate": choice([S.warmup(s, warmup_steps=5) for s in schedules])}, 6, seed=0)
    result = lrjax.sweep(regression, SGD, configs, steps=20, progress=False)
    assert result.train_loss.shape == (6, 20)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: log_uniform(0.0, 1.0), "low must be > 0"),
        (lambda: log_uniform(1.0, 0.1), "high must be > low"),
        (lambda: uniform(1.0, 1.0), "high must be > low"),
        (lambda: uniform(0.0, float("inf")), "high must be finite"),
        (lambda: int_uniform(5, 2), "high must be >= low"),
        (lambda: choice([]), "non-empty"),
        (lambda: random({"lr": [0.1, 0.2]}, 3), r"space\['lr'\] must be a distribution"),
        (lambda: random({}, 3), "space must be a non-empty dict"),
    ],
)
def test_bad_spaces_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_int_uniform_takes_integers():
    with pytest.raises(TypeError, match="low must be an integer"):
        int_uniform(0.5, 3)


# -- successive halving and hyperband ----------------------------------------------------------


def test_successive_halving_promotes_exactly_the_top_of_each_rung(regression):
    """Without refill: one cohort of 9, rungs 10, 30, 90; the recorded survivors of rung 0 are
    exactly the best 3 of its 9 values and of rung 1 the best 1 of 3; utilization is the closed
    form (9·10 + 3·20 + 1·60) / (9·90); a trial's value at a rung is the stand-alone sweep's."""
    configs = {"learning_rate": np.geomspace(1e-3, 0.9, 9)}
    result = successive_halving(regression, SGD, configs, n=9, min_steps=10, max_steps=90, refill=False, progress=False)
    h = result.history
    assert h.groupby("rung").size().tolist() == [9, 3, 1]
    for rung, keep in [(0, 3), (1, 1)]:
        rows = h[h["rung"] == rung]
        best = rows.sort_values("loss", kind="stable")["trial"].head(keep)
        assert set(rows.loc[rows["promoted"], "trial"]) == set(best)
        assert set(h[h["rung"] == rung + 1]["trial"]) == set(best)
    assert result.info["utilization"] == pytest.approx((9 * 10 + 3 * 20 + 1 * 60) / (9 * 90))
    final = h[h["rung"] == 2].iloc[0]
    alone = lrjax.sweep(regression, SGD, {"learning_rate": [final["learning_rate"]]}, steps=90, progress=False)
    assert final["loss"] == pytest.approx(alone.final("loss")[0], rel=1e-6)
    assert result.best()["trial"] == final["trial"]


def test_refill_keeps_the_program_full_and_every_cohort_is_halved_exactly(regression):
    result = successive_halving(regression, SGD, LR, n=9, min_steps=10, max_steps=90, steps=270, progress=False)
    h = result.history
    print(f"utilization with refill: {result.info['utilization']:.3f} over {result.info['trials']} trials")
    assert result.info["utilization"] >= 0.9 and result.info["trials"] > 9
    # ASHA's rule, decision by decision in record order: a trial reaching a rung goes on iff it
    # ranks in the best floor(m/3) of the m values recorded at that rung so far.
    judged = 0
    for rung in (0, 1):
        rows = h[h["rung"] == rung]
        for cohort in rows["cohort"].unique():
            decision = rows[rows["cohort"] == cohort]
            pool = rows.loc[: decision.index.max()]
            keep = len(pool) // 3
            ranked = pool.sort_values("loss", kind="stable", na_position="last")["trial"].head(keep)
            expected = set(decision["trial"]) & set(ranked)
            assert set(decision.loc[decision["promoted"], "trial"]) == expected
            following = h[(h["cohort"] == cohort) & (h["rung"] == rung + 1)]
            assert set(following["trial"]) <= expected  # only the promoted go on (if time is left)
            judged += 1
    assert judged >= 10
    assert (h["rung"] == 2).sum() >= 3  # refilled cohorts reach the last rung too


def test_hyperband_brackets_are_li_et_al_s():
    """Li et al. 2018, Table 1 (R = 81, η = 3): five brackets of 81, 34, 15, 8 and 5 trials
    starting at 1, 3, 9, 27 and 81 units."""
    plan = brackets(1, 81, 3)
    assert [n for n, _ in plan] == [81, 34, 15, 8, 5]
    assert [r[0] for _, r in plan] == [1, 3, 9, 27, 81]
    assert plan[0][1] == [1, 3, 9, 27, 81] and rungs(1, 81, 3) == [1, 3, 9, 27, 81]


def test_hyperband_runs_every_bracket_in_one_population(regression):
    result = hyperband(regression, SGD, LR, min_steps=10, max_steps=90, progress=False)
    h = result.history
    assert result.info["slots"] == 9 + 5 + 3
    assert h.groupby("bracket")["steps"].min().tolist() == [10, 30, 90]
    assert (h.groupby("bracket")["steps"].max() == 90).all()
    assert result.best()["steps"] == 90


# -- population-based training ----------------------------------------------------------------


def test_pbt_exploits_copy_bitwise_and_the_lineage_explains_every_trajectory(regression, monkeypatch):
    copies = []
    original = lrjax.Population.copy

    def checked_copy(self, dst, src):
        original(self, dst, src)
        params = self.params
        for d, s in zip(np.asarray(dst), np.asarray(src), strict=True):
            for leaf in params.values():
                assert leaf[d].tobytes() == leaf[s].tobytes()  # bitwise, at that step
            assert self.steps[d] == self.steps[s]
        copies.append(len(dst))

    monkeypatch.setattr(lrjax.Population, "copy", checked_copy)
    space = {"learning_rate": log_uniform(1e-3, 0.5), "momentum": choice([0.0, 0.5, 0.9])}
    result = pbt(regression, MOMENTUM, space, population=8, steps=120, interval=20, seeds=2, progress=False)
    h = result.history
    assert copies == [4] * 5  # 2 seeds × the bottom quarter (2 of 8), at 5 exploits
    assert len(h) == 8 * 6 and h["steps"].max() == 120
    rows = {(r.trial, r.generation): r for r in h.itertuples()}
    for r in h.itertuples():
        same = [g for (t, g) in rows if t == r.trial]
        first = rows[(r.trial, min(same))]
        assert (r.learning_rate, r.momentum) == (first.learning_rate, first.momentum)  # a trial's hps never change
        if r.parent < 0 or r.generation != min(same):
            continue
        before = rows[(r.parent, r.generation - 1)]  # the copied trial, one generation earlier
        assert r.steps == before.steps + 20  # training went on from the parent's step
        moves = dict(part.split(":") for part in r.explore.split())
        if moves["learning_rate"] == "resample":
            assert 1e-3 <= r.learning_rate <= 0.5
        else:
            factor = float(moves["learning_rate"][1:])
            assert r.learning_rate == pytest.approx(np.clip(before.learning_rate * factor, 1e-3, 0.5), rel=1e-6)
        if moves["momentum"] != "resample":
            i = [0.0, 0.5, 0.9].index(round(before.momentum, 6))
            j = int(np.clip(i + (1 if float(moves["momentum"][1:]) > 1 else -1), 0, 2))
            assert r.momentum == pytest.approx([0.0, 0.5, 0.9][j])


def test_pbt_takes_schedules_as_hyperparameters(regression):
    schedules = [S.cosine_decay(v, decay_steps=n) for v, n in [(0.05, 60), (0.2, 60), (0.3, 30)]]
    result = pbt(
        regression, SGD, {"learning_rate": choice(schedules)}, population=4, steps=60, interval=20, progress=False
    )
    assert len(result.history) == 12
    assert all(isinstance(c["learning_rate"], lrjax.schedules.Schedule) for c in result.configs.values())


# -- Bayesian optimization ---------------------------------------------------------------------


def test_a_bayesian_run_compiles_its_training_program_once(regression):
    space = {"learning_rate": log_uniform(1e-3, 1.0), "momentum": uniform(0.0, 0.9)}
    # JAX's own first-use compilations (key splitting, ...) happen here, in neither count.
    bayesian(regression, MOMENTUM, space, trials=4, batch=4, steps=30, progress=False)
    cache.clear()
    with count_compiles() as one_round:
        bayesian(regression, MOMENTUM, space, trials=4, batch=4, steps=30, progress=False)
    cache.clear()
    with count_compiles() as rounds:
        result = bayesian(regression, MOMENTUM, space, trials=13, batch=4, steps=30, progress=False)
    assert result.info["rounds"] == 4 and len(result.study.trials) == 13  # the last round is padded
    assert rounds.count == one_round.count


def test_diverged_trials_are_told_as_failed_not_as_infinite_loss(regression):
    result = bayesian(
        regression, SGD, {"learning_rate": log_uniform(10.0, 1e3)}, trials=4, batch=4, steps=50, progress=False
    )
    states = [t.state for t in result.study.trials]
    assert states == [optuna.trial.TrialState.FAIL] * 4
    assert all(t.user_attrs["diverged"] for t in result.study.trials)
    assert result.history["diverged"].all()


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import optax, optuna, lrjax
    from lrjax.search import bayesian, log_uniform
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kill_after = int(sys.argv[2])
    if kill_after:
        tell, told = optuna.Study.tell, []
        def tell_then_die(self, *args, **kwargs):
            out = tell(self, *args, **kwargs)
            told.append(1)
            if len(told) == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        optuna.Study.tell = tell_then_die
    task = lrjax.datasets.linear_regression(64)
    bayesian(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": log_uniform(1e-3, 0.5)},
             trials=12, batch=4, steps=20, storage=sys.argv[1], study_name="s", progress=False)
    """
)


def test_a_killed_bayesian_study_resumes_with_no_trial_lost_or_counted_twice(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    run = lambda kill: subprocess.run(
        [sys.executable, str(script), storage, str(kill)], env=env, timeout=240, capture_output=True, text=True
    )
    killed = run(6)  # dies mid-round 2: 4 told in round 1, 2 of round 2's 4 told
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    study = optuna.load_study(study_name="s", storage=storage)
    states = optuna.trial.TrialState
    assert [t.state for t in study.trials].count(states.RUNNING) == 2
    finished = run(0)
    assert finished.returncode == 0, finished.stderr
    study = optuna.load_study(study_name="s", storage=storage)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # trial numbers went on
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    assert len(complete) == 12  # none lost, none counted twice
    interrupted = [t for t in study.trials if t.state == states.FAIL]
    assert len(interrupted) == 2 and len(study.trials) == 14
    requeued = {t.user_attrs["requeued_from"]: t for t in complete if "requeued_from" in t.user_attrs}
    assert sorted(requeued) == sorted(t.number for t in interrupted)
    for t in interrupted:
        assert requeued[t.number].params == t.params  # the interrupted trial was run again


WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    import optax, optuna, lrjax
    from lrjax.search import bayesian, log_uniform
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, role = sys.argv[1:3]
    if role == "dies":  # slow tells (the other worker runs meanwhile); killed right after its third
        tell, told = optuna.Study.tell, []
        def slow_tell(self, *args, **kwargs):
            time.sleep(0.5)
            out = tell(self, *args, **kwargs)
            told.append(1)
            if len(told) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        optuna.Study.tell = slow_tell
    task = lrjax.datasets.linear_regression(64)
    bayesian(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": log_uniform(1e-3, 0.5)},
             trials=12, batch=2, steps=20, storage=storage, study_name="s", progress=False, heartbeat_interval=0.2)
    """
)


def test_two_workers_share_a_study_and_the_survivor_retries_only_the_dead_ones_trials(tmp_path):
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    start = lambda role: subprocess.Popen(
        [sys.executable, "-c", WORKER, storage, role],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    states = optuna.trial.TrialState

    def trials() -> list:
        try:
            return optuna.load_study(study_name="s", storage=storage).trials
        except KeyError:  # not created yet
            return []

    dies = start("dies")
    deadline = time.monotonic() + 120
    while not any(t.state == states.COMPLETE for t in trials()):  # the first worker is training
        assert dies.poll() is None and time.monotonic() < deadline, dies.communicate()
        time.sleep(0.1)
    lives = start("lives")
    try:
        _, err = lives.communicate(timeout=240)
        dies.communicate(timeout=60)
    finally:
        lives.kill(), dies.kill()
    assert dies.returncode == -signal.SIGKILL
    assert lives.returncode == 0, err

    study = trials()
    pid = lambda t: int(t.user_attrs["lrjax_worker"].rsplit(":", 2)[1])  # host:pid:token
    complete = [t for t in study if t.state == states.COMPLETE]
    assert len(complete) == 12 and not [t for t in study if t.state == states.RUNNING]  # exactly the budget
    assert sorted({pid(t) for t in complete}) == sorted({dies.pid, lives.pid})  # both trained trials
    assert all("lrjax_heartbeat" in t.user_attrs for t in complete)
    abandoned = [t for t in study if t.state == states.FAIL and not t.user_attrs.get("lrjax_surplus")]
    assert [pid(t) for t in abandoned] == [dies.pid]  # only the dead worker's trial, the one it left running
    retried = [t for t in complete if t.user_attrs.get("requeued_from") == abandoned[0].number]
    assert len(retried) == 1 and retried[0].params == abandoned[0].params and pid(retried[0]) == lives.pid


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "run, message",
    [
        (
            lambda t: successive_halving(t, SGD, LR, n=9, min_steps=10, max_steps=90, reduction_factor=1.5),
            "reduction_factor must be >= 2",
        ),
        (lambda t: successive_halving(t, SGD, LR, n=2, min_steps=10, max_steps=90), "n must be >= reduction_factor"),
        (lambda t: successive_halving(t, SGD, LR, n=9, min_steps=100, max_steps=90), "max_steps must be >= min_steps"),
        (
            lambda t: successive_halving(t, SGD, {"learning_rate": [0.1, 0.2]}, n=9, min_steps=10, max_steps=90),
            "at least 9 configurations",
        ),
        (
            lambda t: hyperband(t, SGD, LR, min_steps=10, max_steps=90, reduction_factor=1),
            "reduction_factor must be >= 2",
        ),
        (lambda t: pbt(t, SGD, LR, population=8, steps=40, interval=10, quantile=0.6), "quantile must be <= 0.5"),
        (lambda t: pbt(t, SGD, LR, population=8, steps=40, interval=10, quantile=0.0), "quantile must be > 0"),
        (lambda t: pbt(t, MOMENTUM, LR, population=8, steps=40, interval=10), r"reads hp\['momentum'\]"),
        (lambda t: bayesian(t, MOMENTUM, LR, trials=4, batch=2, steps=10), r"reads hp\['momentum'\]"),
        (lambda t: bayesian(t, SGD, LR, trials=4, batch=2, steps=10, metric="accuracy"), "metric must be one of"),
        (lambda t: bayesian(t, SGD, {"learning_rate": 0.1}, trials=4, batch=2, steps=10), "at least one distribution"),
    ],
)
def test_bad_input_raises_before_training(regression, run, message):
    with count_compiles() as compiles, pytest.raises(ValueError, match=message):
        run(regression)
    assert compiles.count == 0


@pytest.mark.parametrize(
    "run, name",
    [
        (lambda t, **k: successive_halving(t, SGD, LR, n=9, min_steps=10, max_steps=90, **k), "successive_halving"),
        (lambda t, **k: hyperband(t, SGD, LR, min_steps=10, max_steps=90, **k), "hyperband"),
        (lambda t, **k: pbt(t, SGD, LR, population=8, steps=40, interval=10, **k), "pbt"),
        (lambda t, **k: bayesian(t, SGD, LR, trials=4, batch=2, steps=10, **k), "bayesian"),
    ],
)
def test_a_misspelled_option_is_a_type_error_as_for_any_keyword(regression, run, name):
    # The policies take their shared options as ``**options: Unpack[SearchOptions]``: a key that
    # is not an option raises what Python raises for an unknown keyword, before anything compiles.
    with (
        count_compiles() as compiles,
        pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'sedes'$"),
    ):
        run(regression, sedes=2)
    assert compiles.count == 0


def test_every_result_reads_alike_and_plots(regression):
    import matplotlib

    matplotlib.use("Agg")
    sweep = lrjax.sweep(regression, SGD, random(LR, 6, seed=1), steps=40, seeds=2, progress=False)
    as_search = lrjax.search.SearchResult.from_sweep(sweep)
    best = sweep.best()
    assert as_search.best()["learning_rate"] == best["learning_rate"]
    assert as_search.best()["loss"] == pytest.approx(best["loss"], rel=1e-6)
    halving = successive_halving(regression, SGD, LR, n=6, min_steps=10, max_steps=30, progress=False)
    population = pbt(regression, SGD, LR, population=4, steps=40, interval=20, progress=False)
    for result, first in [(as_search, "trial"), (halving, "trial"), (population, "steps")]:
        fig = result.plot()
        assert [ax.get_xlabel() for ax in fig.axes][:2] == [first, "learning_rate" if first == "trial" else "steps"]
        assert {"trial", "steps", "member", "learning_rate", "loss", "diverged"} <= set(result.to_pandas())


@pytest.mark.parametrize("policy", ["halving", "pbt", "bayesian"])
def test_eval_every_adds_learning_curves_not_decisions(regression, policy):
    """``eval_every`` evaluates between the decision points: ``learning_curves`` gains the rows,
    ``history`` (the decisions) is what it is without it."""
    run = {
        "halving": lambda **k: successive_halving(regression, SGD, LR, n=6, min_steps=10, max_steps=30, **k),
        "pbt": lambda **k: pbt(regression, SGD, LR, population=4, steps=40, interval=20, **k),
        "bayesian": lambda **k: bayesian(regression, SGD, LR, trials=4, batch=4, steps=40, **k),
    }[policy]
    plain, dense = run(progress=False), run(eval_every=5, progress=False)
    assert plain.history.drop(columns=["trial"] if policy == "bayesian" else []).equals(
        dense.history.drop(columns=["trial"] if policy == "bayesian" else [])
    )
    curves = dense.learning_curves
    assert len(curves) > len(plain.learning_curves) and (curves["steps"] % 5 == 0).all()
    if policy == "bayesian":
        intermediate = dense.study.trials[0].intermediate_values
        assert sorted(intermediate) == [5, 10, 15, 20, 25, 30, 35]
