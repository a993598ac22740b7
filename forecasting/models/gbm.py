"""Gradient-boosted quantile regression on lag, seasonal and calendar features.

Why quantile loss per level instead of a mean plus an assumed distribution: request rates
are skewed and their spread depends on the time of day and on recent burstiness; pinball loss
learns each level directly from the features. The levels are fixed at fit time (one model
each); a level asked for later is interpolated between the fitted ones.

Fit-time budget: 7 days of 1-min data fit in about 2 s on one core, by sampling at most
`max_rows` (origin, k) rows, few shallow trees, and no early stopping (which would make the
number of trees depend on a random validation split). Fits run on one thread (OpenMP and
BLAS): they run in a process pool beside the control loop, and the libraries' default of one
thread per core makes threads spin against each other — measured on two busy cores, one
boosting fit took 1–14 s instead of 0.4 s, and a Ridge fit 2 s instead of 0.25 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from forecasting.base import Forecaster, Quantiles, RawForecast
from forecasting.features import FeatureSpec, forecast_design, series_scale, training_set
from forecasting.hygiene import CleanSeries
from forecasting.threads import one_thread

DEFAULT_LEVELS = (0.05, 0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class BoostingParams:
    """Tree settings shared by the per-series and the global model."""

    max_iter: int = 60
    learning_rate: float = 0.13
    max_leaf_nodes: int = 15
    max_depth: int = 6
    min_samples_leaf: int = 40
    max_bins: int = 63
    random_state: int = 0

    @classmethod
    def of(cls, estimator: object) -> BoostingParams:
        """The settings from an estimator's parameters of the same names."""
        return cls(**{field.name: getattr(estimator, field.name) for field in fields(cls)})

    def regressor(self, **loss: object) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_bins=self.max_bins,
            early_stopping=False,
            random_state=self.random_state,
            **loss,
        )


@dataclass(frozen=True, eq=False)
class FlatForest:
    """The trees of several fitted boosting regressors in flat arrays, evaluated together.

    Why: scikit-learn predicts model by model and tree by tree, so six models of 60 trees take
    ~5 ms for one 60-step forecast — too slow for a hot path that forecasts thousands of
    services a tick. Walking all trees at once in numpy takes ~1 ms, and the arrays pickle to
    a fraction of the estimators' size. Node i's children are
    `children[2i]` (x <= threshold) and `children[2i + 1]`; a leaf is its own child, so every
    walk takes the same number of steps. Features are finite by construction (cleaned series),
    so scikit-learn's routing of missing values is not needed.
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    """Root node of each tree, the models' trees one after another."""
    first_tree: np.ndarray
    """Index in `roots` of each model's first tree."""
    baseline: np.ndarray
    """Each model's initial prediction, added to the sum of its trees."""
    depth: int

    @classmethod
    def compile(cls, models: Sequence[HistGradientBoostingRegressor]) -> FlatForest:
        trees = [[tree.nodes for (tree,) in model._predictors] for model in models]
        nodes = np.concatenate([tree for model in trees for tree in model])
        sizes = np.array([tree.size for model in trees for tree in model])
        roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        shift = np.repeat(roots, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(nodes.size)
        left = np.where(leaf, own, nodes["left"] + shift)
        right = np.where(leaf, own, nodes["right"] + shift)
        counts = np.array([len(model) for model in trees])
        return cls(
            feature=nodes["feature_idx"].astype(np.intp),
            threshold=nodes["num_threshold"].astype(float),
            children=np.column_stack([left, right]).ravel().astype(np.intp),
            value=nodes["value"].astype(float),
            roots=roots.astype(np.intp),
            first_tree=np.concatenate([[0], np.cumsum(counts)[:-1]]),
            baseline=np.array([float(np.ravel(model._baseline_prediction)[0]) for model in models]),
            depth=int(nodes["depth"].max()),
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predictions of every model, shape (models, rows), as each model's `predict`."""
        n_rows = features.shape[0]
        by_feature = np.ascontiguousarray(features.T).ravel()
        row = np.arange(n_rows)[None, :]
        node = np.repeat(self.roots[:, None], n_rows, axis=1)
        for _ in range(self.depth):
            right = by_feature[self.feature[node] * n_rows + row] > self.threshold[node]
            node = self.children[2 * node + right]
        return np.add.reduceat(self.value[node], self.first_tree, axis=0) + self.baseline[:, None]


@dataclass(frozen=True, eq=False)
class Boosters:
    """Boosted trees for the mean and for each quantile level, on normalised targets."""

    levels: tuple[float, ...]
    forest: FlatForest
    """Mean model first, then one per level."""

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        target: np.ndarray,
        levels: Sequence[float],
        params: BoostingParams,
    ) -> Boosters:
        levels = tuple(sorted({float(q) for q in levels}))
        if not levels or not all(0 < q < 1 for q in levels):
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {levels}")
        losses = [{"loss": "squared_error"}] + [{"loss": "quantile", "quantile": q} for q in levels]
        probe = features[:256]
        with one_thread():
            models = [params.regressor(**loss).fit(features, target) for loss in losses]
            expected = [model.predict(probe) for model in models]
        forest = FlatForest.compile(models)
        if not np.allclose(forest.predict(probe), expected):
            raise RuntimeError("cannot read this scikit-learn version's trees")
        return cls(levels, forest)

    def predict(self, features: np.ndarray, quantiles: Quantiles) -> RawForecast:
        """Mean and the requested levels; a level that was not fitted is interpolated between
        the nearest fitted ones (beyond them, the nearest one is used)."""
        predictions = self.forest.predict(features)
        table = np.sort(predictions[1:], axis=0)
        return predictions[0], {q: interpolate_levels(self.levels, table, q) for q in quantiles}


def interpolate_levels(
    levels: Sequence[float] | np.ndarray, table: np.ndarray, level: float
) -> np.ndarray:
    """`table` (one row per level in increasing `levels`) at `level`: linear between the
    nearest levels, the nearest row beyond them."""
    position = np.interp(level, levels, np.arange(len(levels)))
    lower = int(np.floor(position))
    upper = min(lower + 1, len(levels) - 1)
    weight = position - lower
    return table[lower] * (1 - weight) + table[upper] * weight


def boosted_forecast(
    boosters: Boosters,
    forecaster: Forecaster,
    spec: FeatureSpec,
    scale: float,
    max_horizon: int,
    horizon: int,
    quantiles: Quantiles,
) -> RawForecast:
    """Forecast the steps after `forecaster.history_` with fitted boosters, in rate units."""
    history = forecaster.history_
    features, anchor = forecast_design(
        history,
        horizon,
        spec=spec,
        scale=scale,
        start_s=forecaster.start_s_,
        first_index=forecaster.n_seen_ - history.size,
        max_horizon=max_horizon,
    )
    mean, levels = boosters.predict(features, quantiles)
    return anchor + scale * mean, {q: anchor + scale * v for q, v in levels.items()}


def min_training_values(spec: FeatureSpec, max_horizon: int) -> int:
    """Fewest valid values worth fitting on with features `spec`: their look-back, a horizon
    of targets, and a few hundred origins."""
    return spec.history + max_horizon + 200


class FeatureForecaster(Forecaster):
    """A forecaster on `forecasting.features`: its history and minimum data follow from the
    feature look-back and its `max_horizon` parameter."""

    max_horizon: int
    max_rows: int
    random_state: int

    def _training_rows(self, series: CleanSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fix the feature spec and scale for this series, then sample training rows."""
        self.spec_ = FeatureSpec.for_history(self.step_s_, series.values.size)
        self.scale_ = series_scale(series)
        return training_set(
            series,
            spec=self.spec_,
            scale=self.scale_,
            max_horizon=self.max_horizon,
            max_rows=self.max_rows,
            rng=np.random.default_rng(self.random_state),
            start_s=self.start_s_,
        )

    def _min_observations(self, step_s: float) -> int:
        return min_training_values(FeatureSpec(float(step_s)), self.max_horizon)

    def _history_needed(self, step_s: float, n_obs: int) -> int:
        return FeatureSpec.for_history(step_s, n_obs).history


class GradientBoostingQuantile(FeatureForecaster):
    """HistGradientBoosting with quantile loss per level plus squared loss for the mean."""

    name = "gbm"

    def __init__(
        self,
        quantiles: Sequence[float] = DEFAULT_LEVELS,
        max_horizon: int = 60,
        max_rows: int = 12_000,
        max_iter: int = 60,
        learning_rate: float = 0.13,
        max_leaf_nodes: int = 15,
        max_depth: int = 6,
        min_samples_leaf: int = 40,
        max_bins: int = 63,
        random_state: int = 0,
    ) -> None:
        self.quantiles = quantiles
        self.max_horizon = max_horizon
        self.max_rows = max_rows
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_bins = max_bins
        self.random_state = random_state

    def _fit(self, series: CleanSeries) -> None:
        features, target, _ = self._training_rows(series)
        params = BoostingParams.of(self)
        self.boosters_ = Boosters.fit(features, target, self.quantiles, params)

    def _forecast(self, horizon: int, quantiles: Quantiles) -> RawForecast:
        return boosted_forecast(
            self.boosters_, self, self.spec_, self.scale_, self.max_horizon, horizon, quantiles
        )
