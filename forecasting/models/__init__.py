"""Forecasting models, each a `forecasting.base.Forecaster` subclass, and their names.

Models are imported only when one is made, so that listing the names (every CLI start does)
does not import statsmodels and scikit-learn. `auto`, the selection among them, is not one of
them: it is made by `forecasting.registry`, which knows both.
"""

from __future__ import annotations

from importlib import import_module

from forecasting.base import Forecaster

MODELS = {
    "naive": ("forecasting.models.naive", "Naive"),
    "seasonal_naive": ("forecasting.models.naive", "SeasonalNaive"),
    "ets": ("forecasting.models.ets", "HoltWinters"),
    "phpa_hw": ("forecasting.models.phpa", "PhpaHoltWinters"),
    "sarimax": ("forecasting.models.sarimax", "Sarimax"),
    "croston": ("forecasting.models.intermittent", "Croston"),
    "tsb": ("forecasting.models.intermittent", "TSB"),
    "gbm": ("forecasting.models.gbm", "GradientBoostingQuantile"),
    "ridge": ("forecasting.models.linear", "RidgeForecaster"),
}
"""Per-series models: name → (module, class)."""


def make_model(name: str) -> Forecaster:
    """A new, unfitted per-series model of `name` (one of `MODELS`)."""
    module, cls = MODELS[name]
    return getattr(import_module(module), cls)()
