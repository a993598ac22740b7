"""Leadtime's forecasting library: models, features, backtesting and metrics.

It knows nothing of Kubernetes and imports nothing from `autoscaler` or `adapters` (DESIGN §1).
"""
