"""Leadtime's forecasting library: models, features, backtesting and metrics.

It knows nothing of Kubernetes and imports nothing from `autoscaler` or `adapters`
(docs/architecture.md §1).
"""
