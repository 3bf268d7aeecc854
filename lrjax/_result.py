"""`SweepResult`: what a sweep measured, one row per member, with tables, plots and files."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

# Directions of the metrics lrjax knows by name; a task declares others (Task(metric_modes=...)).
METRIC_MODES = {
    "loss": "min",
    "train_loss": "min",
    "error": "min",
    "mse": "min",
    "mae": "min",
    "perplexity": "min",
    "accuracy": "max",
    "top1": "max",
    "top5": "max",
    "f1": "max",
    "auc": "max",
}


def metric_mode(metric: str, mode: str | None, task_modes: Mapping[str, str]) -> str:
    """``mode`` checked, or when None the metric's direction: as the task declares it
    (``Task(metric_modes=...)``), else from `METRIC_MODES`; any other metric needs it."""
    if mode is None:
        mode = task_modes.get(metric, METRIC_MODES.get(metric))
        if mode is None:
            raise ValueError(
                f"mode must be given ('min' or 'max') for metric {metric!r}: the task does not declare it "
                f"(Task(metric_modes=...)) and it is not one of {sorted(METRIC_MODES)}"
            )
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def evaluated_on(task: Any) -> str:
    """Which data a task's evaluation runs on: ``"eval_data"``, or ``"train_data"`` (the whole
    training set) when it has none."""
    return "train_data" if task.eval_data is None else "eval_data"


def metric_column(metric: str, data: str = "eval_data") -> str:
    """The name of a final metric in tables and plots, saying what it was computed on:
    ``final_train_loss`` for ``train_loss`` (the minibatch training loss, mean of the last 5%
    of steps); ``eval_<metric>`` for an evaluation on ``eval_data``; ``train_data_<metric>`` for
    one on the training set of a task without ``eval_data``.

    Example:
      >>> from lrjax._result import metric_column
      >>> metric_column("accuracy"), metric_column("accuracy", "train_data"), metric_column("train_loss")
      ('eval_accuracy', 'train_data_accuracy', 'final_train_loss')
    """
    if metric == "train_loss":
        return "final_train_loss"
    return ("eval_" if data == "eval_data" else "train_data_") + metric


def metric_label(metric: str, data: str = "eval_data") -> str:
    """`metric_column` in words for axis labels: ``eval loss``, ``train data loss``."""
    return metric_column(metric, data).replace("_", " ")


def readable(values: Any) -> np.ndarray:
    """float32 values as the float64 numbers they print as (0.1, not 0.10000000149011612)."""
    values = np.asarray(values)
    return values.astype(str).astype(np.float64) if values.dtype == np.float32 else values


@dataclasses.dataclass(repr=False)
class SweepResult:
    """What a sweep measured, one row per member (configuration-major, seeds inner).

    Attributes:
      configs: name -> (M,) values, plus ``seed`` (the seed index of each member).
      train_loss: (M, steps) training loss before each update; NaN after divergence.
      eval_steps: (E,) numbers of updates applied at each evaluation.
      eval_metrics: name -> (M, E); always includes ``loss``.
      final_params: the parameters pytree with a leading M axis.
      final_model_state: the model state (a ``stateful`` `lrjax.Task`'s running statistics)
        with a leading M axis, or None.
      diverged: (M,) whether the member diverged: its loss or update turned non-finite, or its
        loss exceeded ``divergence_factor`` times its first loss (see `lrjax.Population`).
      diverged_at: (M,) the step at which it did, or −1.
      info: task name, steps, batch size, seeds, devices, memory groups, XLA compilations,
        seconds spent tracing and compiling (wall clock) and seconds in all, and
        ``evaluated_on``: ``"eval_data"``, or ``"train_data"`` for a task without eval data
        (its evaluation columns are then ``train_data_<metric>``, see `metric_column`).
      plateau_scale: (M, E) each member's plateau scale after each evaluation's observation
        (with ``plateau=``), else None.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                      {"learning_rate": [0.01, 0.1]}, steps=100, seeds=2, eval_every=50, progress=False)
      >>> result.train_loss.shape, result.eval_metrics["loss"].shape, result.eval_steps.tolist()
      ((4, 100), (4, 2), [50, 100])
      >>> round(result.best()["learning_rate"], 6)
      0.1
      >>> list(result.to_pandas().columns)
      ['learning_rate', 'seed', 'final_train_loss', 'train_data_loss', 'diverged', 'diverged_at']
    """

    configs: dict[str, np.ndarray]
    train_loss: np.ndarray
    eval_steps: np.ndarray
    eval_metrics: dict[str, np.ndarray]
    final_params: Any
    diverged: np.ndarray
    diverged_at: np.ndarray
    info: dict[str, Any]
    plateau_scale: np.ndarray | None = None
    final_model_state: Any = None

    @property
    def evaluated_on(self) -> str:
        """``"eval_data"``, or ``"train_data"`` if the task had no eval data."""
        return self.info.get("evaluated_on", "eval_data")

    def column(self, metric: str) -> str:
        """The `to_pandas` column of ``metric`` (``eval_loss``, or ``train_data_loss`` without
        eval data; ``final_train_loss``), see `metric_column`."""
        return metric_column(self._canonical(metric), self.evaluated_on)

    def _known(self, metric: str) -> str:
        """``metric`` by its own name (`_canonical`), or a `ValueError` listing the names."""
        canonical = self._canonical(metric)
        if canonical == "train_loss" or canonical in self.eval_metrics:
            return canonical
        names = ["train_loss", *sorted(self.eval_metrics)]
        columns = [self.column(n) for n in names]
        hint = ""
        if metric.startswith("eval_") and self.evaluated_on == "train_data":
            hint = "; the task has no eval_data, so its metrics were computed on train_data"
        raise ValueError(f"metric must be one of {names} (or the table's {columns}), got {metric!r}{hint}")

    def _canonical(self, metric: str) -> str:
        """``metric`` by its own name: the table's ``final_train_loss`` and ``eval_<name>`` (or
        ``train_data_<name>``) columns (`to_pandas`) name ``train_loss`` and the metric ``<name>``."""
        if metric == "final_train_loss":
            return "train_loss"
        prefix = metric_column("", self.evaluated_on)
        if metric.startswith(prefix) and metric[len(prefix) :] in self.eval_metrics:
            return metric[len(prefix) :]
        return metric

    def final(self, metric: str = "loss") -> np.ndarray:
        """Each member's final value of an eval metric, or of ``train_loss`` (mean of the last
        5% of steps); NaN for diverged members. float32 values come as the float64 numbers they
        print as, so tables and CSV files show one precision. The table's column names
        (``eval_loss``, ``eval_accuracy``, ``final_train_loss``; see `column`) name the same values."""
        metric = self._known(metric)
        if metric == "train_loss":
            window = max(1, self.train_loss.shape[1] // 20)
            values = readable(self.train_loss[:, -window:].mean(axis=1))
        else:
            values = readable(self.eval_metrics[metric][:, -1]).astype(np.float64)
        return np.where(self.diverged, np.nan, values)

    def configurations(self) -> list[np.ndarray]:
        """The members of each configuration: members whose hyperparameters (every config but
        ``seed``) are all equal are runs of one configuration, wherever they sit. After a sweep
        these are consecutive blocks of ``seeds`` members; after `lrjax.Population.copy` or
        ``set_configs`` changed single members, they are whatever members now share values
        (so different hyperparameters are never averaged together).

        Returns:
          One array of member indices per configuration, in the order of their first members.

        Example:
          >>> import numpy as np, lrjax
          >>> result = lrjax.SweepResult({"learning_rate": np.array([0.1, 0.1, 0.3, 0.1]), "seed": np.array([0, 1, 0, 1])},
          ...                            np.zeros((4, 1)), np.zeros(0), {}, None, np.zeros(4, bool), -np.ones(4), {"seeds": 2})
          >>> [m.tolist() for m in result.configurations()]
          [[0, 1, 3], [2]]
        """
        size = len(self.diverged)
        columns = [readable(v).reshape(size, -1) for k, v in self.configs.items() if k != "seed"]
        if not columns:
            return [np.arange(size)]
        _, first, which = np.unique(np.concatenate(columns, axis=1), axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        return [np.flatnonzero(which.reshape(-1) == c) for c in order]

    def by_configuration(self, values: np.ndarray) -> np.ndarray:
        """Per-member ``values`` (members first) arranged by `configurations`: shape
        (configurations, most members of one, ...), a configuration's members in order, the
        rest filled with NaN (False for booleans).

        Args:
          values: an array with one row per member (``final(...)``, ``train_loss``, ``diverged``).

        Returns:
          The padded array.
        """
        values = np.asarray(values)
        groups = self.configurations()
        fill = False if values.dtype == bool else np.nan
        dtype = bool if values.dtype == bool else np.result_type(values.dtype, np.float32)
        out = np.full((len(groups), max(len(g) for g in groups), *values.shape[1:]), fill, dtype)
        for c, members in enumerate(groups):
            out[c, : len(members)] = values[members]
        return out

    def best(self, metric: str = "loss", mode: str | None = None) -> dict[str, Any]:
        """The configuration with the best final ``metric``, averaged over its seeds (its
        members, see `configurations`).

        A configuration with a diverged seed ranks last.

        Args:
          metric: ``"train_loss"`` or an evaluation metric, by its name or its `to_pandas`
            column (``"final_train_loss"``, ``"eval_loss"``, ``"eval_accuracy"``).
          mode: ``"min"`` or ``"max"``. Default: as the task declares it
            (``Task(metric_modes={"f1": "max"})``), else from `METRIC_MODES` (``loss`` min,
            ``accuracy`` max, ...); any other metric needs it.

        Returns:
          The configuration's hyperparameters (as Python floats at float32 precision), its
          seed-mean ``metric`` and ``members``: the indices of its members (one per seed) in
          ``final_params``, ``train_loss`` and `to_pandas`.
        """
        mode = self.direction(metric, mode)
        groups = self.configurations()
        finals = self.final(metric)
        scores = np.array([finals[members].mean() for members in groups])
        if np.all(np.isnan(scores)):
            raise ValueError("every configuration diverged; there is no best")
        members = groups[int(np.nanargmin(scores) if mode == "min" else np.nanargmax(scores))]
        row = {k: readable(value[members[:1]])[0].item() for k, value in self.configs.items() if k != "seed"}
        return {**row, metric: float(finals[members].mean()), "members": members.tolist()}

    def best_params(self, metric: str = "loss", mode: str | None = None) -> Any:
        """The final parameters of the best configuration's best seed by ``metric`` (see `best`).

        Returns:
          The parameters pytree of one member.
        """
        return self._of_best(self.final_params, metric, mode)

    def best_model_state(self, metric: str = "loss", mode: str | None = None) -> Any:
        """The final model state of the member `best_params` picks (None without model state):
        with those parameters, what evaluates the model (a BatchNorm's running statistics).

        Returns:
          The model state pytree of one member, or None.
        """
        return None if self.final_model_state is None else self._of_best(self.final_model_state, metric, mode)

    def _of_best(self, tree: Any, metric: str, mode: str | None) -> Any:
        mode = self.direction(metric, mode)
        members = self.best(metric, mode)["members"]
        values = self.final(metric)[members]
        pick = members[int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))]
        return jax.tree.map(lambda x: np.asarray(x)[pick], tree)

    def direction(self, metric: str, mode: str | None = None) -> str:
        """Whether lower or higher ``metric`` is better: ``mode`` checked when given, else as the
        task declared (``Task(metric_modes=...)``) or as `METRIC_MODES` knows it.

        Args:
          metric: a metric by its own name (``loss``, ``accuracy``) or its column's.
          mode: ``"min"``, ``"max"``, or None.

        Returns:
          ``"min"`` or ``"max"``.

        Raises:
          ValueError: an unknown metric, or one whose direction is not known and not given.

        Example:
          >>> import optax, lrjax
          >>> result = lrjax.sweep(lrjax.datasets.digits_mlp(), lambda hp: optax.sgd(hp["learning_rate"]),
          ...                      {"learning_rate": [0.1]}, steps=10, batch_size=32, progress=False)
          >>> result.direction("eval_accuracy"), result.direction("loss")
          ('max', 'min')
        """
        return metric_mode(self._known(metric), mode, self.info.get("metric_modes", {}))

    def to_pandas(self) -> Any:
        """One row per member: configuration, seed, final losses and metrics, divergence."""
        import pandas as pd

        frame = pd.DataFrame({k: readable(value) for k, value in self.configs.items()})
        frame["final_train_loss"] = self.final("train_loss")
        for name in self.eval_metrics:
            frame[self.column(name)] = self.final(name)
        frame["diverged"] = self.diverged
        frame["diverged_at"] = self.diverged_at
        return frame

    def __repr__(self) -> str:
        diverged = int(np.sum(self.diverged))
        return (
            f"SweepResult(task={self.info.get('task')!r}, members={len(self.diverged)}, seeds={self.info.get('seeds')}, "
            f"steps={self.train_loss.shape[1]}, evaluations={len(self.eval_steps)}, configs={list(self.configs)}, "
            f"metrics={sorted(self.eval_metrics)}, diverged={diverged})"
        )

    def plot(self, hyperparameter: str | None = None, metric: str = "loss") -> Any:
        """Loss curves coloured by learning rate, and final ``metric`` against it; see `lrjax.plot.sweep`."""
        from lrjax import plot

        return plot.sweep(self, hyperparameter=hyperparameter, metric=metric)

    def save(self, path: str) -> None:
        """Write the result to a ``.npz`` file (parameters and model state are stored by their
        pytree paths)."""
        arrays = {f"config/{k}": v for k, v in self.configs.items()}
        arrays.update({f"eval/{k}": v for k, v in self.eval_metrics.items()})
        if self.plateau_scale is not None:
            arrays["plateau_scale"] = self.plateau_scale
        for section, tree in (("params", self.final_params), ("model_state", self.final_model_state)):
            for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                arrays[f"{section}/{jax.tree_util.keystr(p)}"] = np.asarray(leaf)
        np.savez_compressed(
            path,
            train_loss=self.train_loss,
            eval_steps=self.eval_steps,
            diverged=self.diverged,
            diverged_at=self.diverged_at,
            info=np.asarray(json.dumps(self.info)),
            **arrays,  # pyright: ignore[reportArgumentType]: names of arrays, none of them allow_pickle
        )

    @classmethod
    def load(cls, path: str, like: Any = None, model_state_like: Any = None) -> SweepResult:
        """Read a saved result. ``final_params`` is a dict keyed by pytree path, or, given
        ``like`` (any pytree with the parameters' structure), that structure;
        ``final_model_state`` likewise with ``model_state_like`` (None if none was saved)."""
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
        section = lambda prefix: {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}

        def tree(prefix: str, like: Any) -> Any:
            flat = section(prefix)
            if like is None:
                return flat
            paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
            return jax.tree.unflatten(jax.tree.structure(like), [flat[p] for p in paths])

        state = tree("model_state/", model_state_like) if any(k.startswith("model_state/") for k in data) else None
        return cls(
            configs=section("config/"),
            train_loss=data["train_loss"],
            eval_steps=data["eval_steps"],
            eval_metrics=section("eval/"),
            final_params=tree("params/", like),
            final_model_state=state,
            diverged=data["diverged"],
            diverged_at=data["diverged_at"],
            info=json.loads(str(data["info"])),
            plateau_scale=data.get("plateau_scale"),
        )
