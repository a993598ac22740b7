"""Forecaster names, as the CLI, the config and the selector spell them.

Models are imported only when one is made, so that listing the names (every CLI start does)
does not import statsmodels and scikit-learn.
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


def model_names() -> tuple[str, ...]:
    """Every per-series model, then `auto` (selection among them)."""
    return (*MODELS, "auto")


def import_models(name: str) -> None:
    """Import now the modules that model `name` (for `auto`, every candidate) will need: the
    simulator calls this before it starts its clock, so that a replay's wall time is the
    replay's, not a one-off second of importing statsmodels and scikit-learn at its first fit."""
    if name == "auto":
        from forecasting.selection import DEFAULT_CANDIDATES

        for candidate in DEFAULT_CANDIDATES:
            import_models(candidate)
    elif name in MODELS:
        import_module(MODELS[name][0])


def make_forecaster(
    name: str, *, horizon_steps: int | None = None, quick: bool = False
) -> Forecaster:
    """A new, unfitted forecaster; unknown names raise ValueError listing the known ones.

    `horizon_steps` tells `auto` which horizon to select for (other models forecast any);
    `quick` makes `auto` choose among its cheaper candidates only (the others are as quick as
    they come).
    """
    if name == "auto":
        from forecasting.selection import DEFAULT_CANDIDATES, QUICK_CANDIDATES, AutoForecaster

        candidates = QUICK_CANDIDATES if quick else DEFAULT_CANDIDATES
        if horizon_steps is None:
            return AutoForecaster(candidates)
        return AutoForecaster(candidates, horizon_steps=horizon_steps)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    module, cls = MODELS[name]
    return getattr(import_module(module), cls)()
