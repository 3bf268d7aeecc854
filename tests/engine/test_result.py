"""SweepResult: best(), to_pandas(), save/load, plot(); Flax NNX and linen adapters; grids."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
import lrjax.datasets as D
from lrjax.engine import init_key
from tests.engine.conftest import run

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def result(digits, sgd):
    configs = lrjax.search.grid({"learning_rate": [0.03, 0.3, 1e20]})
    return run(digits, sgd, configs, steps=40, batch_size=64, seeds=2, eval_every=20)


def test_best_averages_seeds_and_skips_diverged(result):
    loss = result.final("loss").reshape(3, 2).mean(1)
    best = result.best()
    i = int(np.nanargmin(loss))
    assert best["members"] == [2 * i, 2 * i + 1] and best["loss"] == pytest.approx(loss[i])
    assert best["learning_rate"] == 0.3  # as printed, not 0.30000001192092896
    # best_params: the best configuration's better seed, as it is in final_params
    member = best["members"][int(np.argmin(result.final("loss")[best["members"]]))]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b[member]), result.best_params(), result.final_params)
    accuracy = result.best("accuracy")
    assert accuracy["accuracy"] == pytest.approx(np.nanmax(result.final("accuracy").reshape(3, 2).mean(1)))
    with pytest.raises(
        ValueError,
        match=r"metric must be one of \['train_loss', 'accuracy', 'loss'\] \(or the table's \['final_train_loss', "
        r"'eval_accuracy', 'eval_loss'\]\), got 'f1'",
    ):
        result.best("f1")
    # The table's column names name the same values, with the same directions.
    frame = result.to_pandas()
    for column, name in (("eval_accuracy", "accuracy"), ("eval_loss", "loss"), ("final_train_loss", "train_loss")):
        assert result.best(column)[column] == pytest.approx(result.best(name)[name])
        np.testing.assert_array_equal(result.final(column), frame[column].to_numpy())
    assert result.best("accuracy", mode="min")["accuracy"] == pytest.approx(
        np.nanmin(result.final("accuracy").reshape(3, 2).mean(1))
    )


def test_best_takes_a_metrics_direction_from_the_task_or_the_table_never_from_its_name(digits, sgd):
    def metrics(params, data):
        return {"lossy_acc": digits.metrics(params, data)["accuracy"], "margin": digits.metrics(params, data)["loss"]}

    task = lrjax.Task(
        digits.init, digits.loss, digits.train_data, digits.eval_data, metrics, metric_modes={"margin": "max"}
    )
    result = run(task, sgd, {"learning_rate": [0.03, 0.3]}, steps=10)
    assert result.best("margin")["margin"] == pytest.approx(np.nanmax(result.final("margin")))
    with pytest.raises(ValueError, match=r"mode must be given \('min' or 'max'\) for metric 'lossy_acc'"):
        result.best("lossy_acc")  # once guessed "max" from "acc" in its name
    with pytest.raises(ValueError, match=r"metric_modes\['f1'\] must be 'min' or 'max', got 'up'"):
        lrjax.Task(digits.init, digits.loss, digits.train_data, metric_modes={"f1": "up"})


def test_to_pandas_has_one_row_per_member(result):
    frame = result.to_pandas()
    assert len(frame) == 6 and list(frame["seed"]) == [0, 1, 0, 1, 0, 1]
    assert {"learning_rate", "final_train_loss", "eval_loss", "eval_accuracy", "diverged", "diverged_at"} <= set(frame)
    assert frame["diverged"].tolist() == [False, False, False, False, True, True]
    np.testing.assert_allclose(frame["eval_loss"][:4], result.eval_metrics["loss"][:4, -1])
    assert result.eval_steps.tolist() == [20, 40]


def test_save_and_load_round_trip(result, tmp_path, digits):
    path = tmp_path / "sweep.npz"
    result.save(str(path))
    loaded = lrjax.SweepResult.load(str(path), like=digits.init(jax.random.key(0)))
    np.testing.assert_array_equal(loaded.train_loss, result.train_loss)
    np.testing.assert_array_equal(loaded.eval_metrics["accuracy"], result.eval_metrics["accuracy"])
    np.testing.assert_array_equal(loaded.diverged_at, result.diverged_at)
    assert loaded.configs.keys() == result.configs.keys() and loaded.info == result.info
    jax.tree.map(np.testing.assert_array_equal, loaded.final_params, result.final_params)
    flat = lrjax.SweepResult.load(str(path))
    assert "['Dense_0']['kernel']" in flat.final_params


def test_plot_of_a_sweep_with_seeds_evaluations_and_divergence(result):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = result.plot()
    assert plt.get_fignums() == [*before, fig.number]  # open in pyplot, as plt.subplots's: plt.show() shows it
    curves, evals, final, colorbar = fig.axes
    assert (
        curves.get_title() == "digits_mlp: training loss (mean over seeds)" and colorbar.get_ylabel() == "learning_rate"
    )
    assert len(curves.get_lines()) == 3  # one per configuration, its seeds averaged
    assert evals.get_title() == "eval loss during training" and [
        len(line.get_xdata()) for line in evals.get_lines()
    ] == [2, 2, 2]
    assert final.get_xscale() == "log" and final.get_xlabel() == "learning_rate"
    (mean,) = [line for line in final.get_lines() if line.get_label() == "mean over seeds"]
    np.testing.assert_allclose(
        mean.get_xdata(), [0.03, 0.3], rtol=1e-6
    )  # the diverged configuration is not on the line
    np.testing.assert_allclose(mean.get_ydata(), result.final("loss").reshape(3, 2).mean(1)[:2], rtol=1e-6)
    labels = [t.get_text() for t in final.get_legend().get_texts()]
    assert labels == ["mean over seeds", "diverged", f"best: learning_rate={result.best()['learning_rate']:.3g}"]
    band, crosses, star = final.collections  # min-max band over seeds, diverged, best
    assert type(band).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
    np.testing.assert_allclose(crosses.get_offsets()[:, 0], [1e20])
    np.testing.assert_allclose(
        star.get_offsets()[0], [result.best()["learning_rate"], result.best()["loss"]], rtol=1e-6
    )


def test_plot_of_a_grid_has_a_line_per_other_value_and_a_heat_map(quadratic):
    configs = lrjax.search.grid({"learning_rate": [0.01, 0.05, 0.15], "momentum": [0.0, 0.5]})
    result = run(
        quadratic, lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]), configs, steps=20, seeds=2
    )
    fig = result.plot()
    curves, final, heat = fig.axes[:3]
    assert len(curves.get_lines()) == 6
    assert [line.get_label() for line in final.get_lines()] == ["momentum=0", "momentum=0.5"]
    assert heat.get_xlabel() == "learning_rate" and heat.get_ylabel() == "momentum"
    table = heat.images[0].get_array()
    np.testing.assert_allclose(table, result.final("loss").reshape(3, 2, 2).mean(2).reshape(3, 2).T, rtol=1e-6)
    (outline,) = heat.patches  # the best cell
    best = result.best()
    assert outline.get_xy() == (
        float(np.searchsorted([0.01, 0.05, 0.15], best["learning_rate"], side="left")) - 0.5,
        float(np.searchsorted([0.0, 0.5], best["momentum"])) - 0.5,
    )
    assert len(heat.texts) == 6


def test_plot_thins_many_curves(quadratic, sgd):
    result = run(quadratic, sgd, {"learning_rate": np.geomspace(1e-3, 0.1, 30)}, steps=10)
    curves = lrjax.plot.sweep(result, max_curves=10).axes[0]
    assert len(curves.get_lines()) == 10 and "10 of 30 configurations" in curves.get_title()


def test_nnx_task_trains_like_its_linen_twin():
    (x, y), _ = D.load_digits()

    class Linen(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(10)(x.reshape(x.shape[0], -1))

    class NNX(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(64, 10, rngs=rngs)

        def __call__(self, x):
            return self.dense(x.reshape(x.shape[0], -1))

    linen_task = lrjax.Task.from_linen(Linen(), (x, y))
    nnx_task = lrjax.Task.from_nnx(NNX, (x, y))
    # Same initial weights: copy the linen init into the NNX state.
    linen_params = linen_task.init(init_key(0, 1, 0))
    nnx_params = nnx_task.init(init_key(0, 1, 0))
    nnx_params["dense"]["kernel"].value = linen_params["Dense_0"]["kernel"]
    nnx_params["dense"]["bias"].value = linen_params["Dense_0"]["bias"]
    np.testing.assert_allclose(nnx_task.loss(nnx_params, (x, y)), linen_task.loss(linen_params, (x, y)), rtol=1e-6)
    opt = lambda hp: optax.sgd(hp["learning_rate"])
    out = run(nnx_task, opt, {"learning_rate": [0.5, 2.0]}, steps=30)
    assert np.all(out.train_loss[:, -1] < 0.6 * out.train_loss[:, 0])
    assert set(out.eval_metrics) == {"loss", "accuracy"}


def test_linear_regression_recovers_the_line():
    task = D.linear_regression()
    out = run(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.5]}, steps=300)
    assert out.final_params["w"][0] == pytest.approx(2.0, abs=0.05)
    assert out.final_params["b"][0] == pytest.approx(1.0, abs=0.02)


def test_cnn_task_runs_in_a_sweep():
    out = run(
        D.digits_cnn(channels=(4, 8)),
        lambda hp: optax.adam(hp["learning_rate"]),
        {"learning_rate": [3e-3, 3e-2]},
        steps=30,
        batch_size=64,
    )
    assert np.all(out.train_loss[:, -5:].mean(1) < out.train_loss[:, :5].mean(1))


def test_grid_and_log_grid():
    grid = lrjax.search.grid({"learning_rate": [0.1, 0.01], "weight_decay": [0.0, 1e-4, 1e-3]})
    assert grid["learning_rate"].tolist() == [0.1] * 3 + [0.01] * 3
    assert grid["weight_decay"].tolist() == [0.0, 1e-4, 1e-3] * 2
    np.testing.assert_allclose(lrjax.search.log_grid(1e-4, 1.0, 5), [1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"high must be > low \(0.1\), got 0.01"):
        lrjax.search.log_grid(0.1, 0.01, 3)
    with pytest.raises(ValueError, match="num must be an integer >= 1, got 0"):
        lrjax.search.log_grid(0.1, 1.0, 0)
    with pytest.raises(ValueError, match=r"axes\['lr'\] must be a non-empty 1-D sequence"):
        lrjax.search.grid({"lr": []})


def test_loss_with_aux_output_trains_and_reports_the_scalar_loss():
    base = D.linear_regression()

    def loss_with_aux(params, batch):
        xs, ys = batch
        err = params["w"] * xs + params["b"] - ys
        return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err))}

    task = lrjax.Task(base.init, loss_with_aux, base.train_data, name="aux")
    plain = run(base, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1, 0.5]}, steps=50)
    aux = run(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1, 0.5]}, steps=50)
    np.testing.assert_allclose(aux.train_loss, plain.train_loss, rtol=1e-6)
    np.testing.assert_allclose(aux.final("loss"), plain.final("loss"), rtol=1e-6)


def test_configs_as_a_dataframe_a_list_of_dicts_or_a_list_of_schedules(digits, sgd):
    import pandas as pd

    import lrjax.schedules as S

    as_dict = run(digits, sgd, {"learning_rate": [0.05, 0.2]}, steps=5)
    as_frame = run(digits, sgd, pd.DataFrame({"learning_rate": [0.05, 0.2]}), steps=5)
    as_rows = run(digits, sgd, [{"learning_rate": 0.05}, {"learning_rate": 0.2}], steps=5)
    np.testing.assert_array_equal(as_frame.train_loss, as_dict.train_loss)
    np.testing.assert_array_equal(as_rows.train_loss, as_dict.train_loss)

    schedules = lrjax.search.grid(
        {"learning_rate": [S.cosine_decay(p, decay_steps=5) for p in (0.05, 0.2)], "momentum": [0.0]}
    )
    assert type(schedules["learning_rate"]) is type(S.cosine_decay(0.05, decay_steps=5))  # one batched schedule
    swept = run(digits, lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]), schedules, steps=5)
    frame = swept.to_pandas()
    assert frame["learning_rate.init_value"].tolist() == [0.05, 0.2]  # readable name and values
    assert "learning_rate.decay_steps" in frame and "momentum" in frame  # cosine_decay's own argument name
    with pytest.raises(
        ValueError, match=r"configs\[1\] must have the names of configs\[0\] \['learning_rate'\], got \['lr'\]"
    ):
        run(digits, sgd, [{"learning_rate": 0.05}, {"lr": 0.2}], steps=5)


def test_reprs_are_short_and_never_show_data(result, digits):
    assert len(repr(result)) < 300 and "array" not in repr(result)
    assert repr(digits).startswith("Task('digits_mlp', train=1438 examples of shapes [(8, 8), ()], eval=359 examples")
    assert len(repr(digits)) < 200


def test_progress_shows_steps_members_best_losses_and_divergence(digits, sgd, capsys):
    lrjax.sweep(digits, sgd, {"learning_rate": [0.1, 1e20]}, steps=120, batch_size=32, seeds=2, progress=True)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "sweep digits_mlp · 4 members" in final and "120/120" in final and "step/s" in final
    assert "diverged=2" in final and "best_train_loss=" in final and "best_eval_loss=" in final
    run(digits, sgd, {"learning_rate": [0.1]}, steps=5)  # progress=False: silent
    assert capsys.readouterr().err == ""


def test_without_eval_data_every_number_is_named_for_the_data_it_was_computed_on(quadratic, sgd, capsys):
    result = lrjax.sweep(quadratic, sgd, {"learning_rate": [0.01, 0.1]}, steps=40, eval_every=20, progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "best_train_data_loss=" in bar and "best_train_loss=" in bar and "eval" not in bar
    assert result.evaluated_on == "train_data"
    frame = result.to_pandas()
    assert list(frame.columns) == [
        "learning_rate",
        "seed",
        "final_train_loss",
        "train_data_loss",
        "diverged",
        "diverged_at",
    ]
    assert result.best("train_data_loss")["train_data_loss"] == pytest.approx(frame["train_data_loss"].min())
    with pytest.raises(
        ValueError,
        match=r"table's \['final_train_loss', 'train_data_loss'\]\), got 'eval_loss'; the task has no eval_data",
    ):
        result.best("eval_loss")
    figure = result.plot()
    assert {ax.get_ylabel() for ax in figure.axes} >= {"train data loss", "final train data loss"}
    assert "eval" not in " ".join(ax.get_ylabel() + ax.get_title() for ax in figure.axes)


def test_a_swept_schedule_argument_is_named_as_the_user_wrote_it(digits):
    import lrjax.schedules as S

    peaks = [0.01, 0.05]
    schedules = [S.warmup_cosine_decay(0.0, peak_value=p, warmup_steps=5, total_steps=20) for p in peaks]
    result = run(digits, lambda hp: optax.adam(hp["learning_rate"]), {"learning_rate": schedules}, steps=20)
    frame = result.to_pandas()
    assert frame["learning_rate.peak_value"].tolist() == peaks  # not learning_rate.schedule.init_value
    assert {"learning_rate.warmup_steps", "learning_rate.decay_steps", "learning_rate.init_value"} <= set(frame)
    assert result.plot().axes[-2].get_xlabel() == "learning_rate.peak_value"  # the swept one goes on the x axis


def test_tables_show_float32_values_as_printed_and_a_zero_sits_on_a_symlog_axis(quadratic):
    configs = lrjax.search.grid({"learning_rate": [0.01, 0.1], "weight_decay": [0.0, 1e-4, 1e-2]})
    result = run(
        quadratic, lambda hp: optax.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"]), configs, steps=10
    )
    frame = result.to_pandas()
    assert frame["weight_decay"].tolist()[:3] == [0.0, 0.0001, 0.01]  # not 9.999999747378752e-05
    assert frame["train_data_loss"].tolist() == [float(str(np.float32(v))) for v in result.eval_metrics["loss"][:, -1]]
    final = result.plot("weight_decay").axes[1]
    assert final.get_xscale() == "symlog" and final.get_xlabel() == "weight_decay"  # 0 and 1e-4 apart
