"""Forecaster names, as the CLI, the config and the selector spell them: the per-series
models (`forecasting.models.MODELS`) and `auto`, the selection among them."""

from __future__ import annotations

from importlib import import_module

from forecasting.base import Forecaster
from forecasting.models import MODELS, make_model
from forecasting.selection import DEFAULT_CANDIDATES, QUICK_CANDIDATES, AutoForecaster

__all__ = ["MODELS", "import_models", "make_forecaster", "model_names"]


def model_names() -> tuple[str, ...]:
    """Every per-series model, then `auto` (selection among them)."""
    return (*MODELS, "auto")


def import_models(name: str) -> None:
    """Import now the modules that model `name` (for `auto`, every candidate) will need: the
    simulator calls this before it starts its clock, so that a replay's wall time is the
    replay's, not a one-off second of importing statsmodels and scikit-learn at its first fit."""
    if name == "auto":
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
        candidates = QUICK_CANDIDATES if quick else DEFAULT_CANDIDATES
        if horizon_steps is None:
            return AutoForecaster(candidates)
        return AutoForecaster(candidates, horizon_steps=horizon_steps)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    return make_model(name)
