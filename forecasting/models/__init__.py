"""Forecasting models, each a `forecasting.base.Forecaster` subclass."""
