"""The forecasting library: models, backtests, selection, calibration."""
