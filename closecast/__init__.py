"""closecast: scheduled per-ticker LSTM price forecasting with honest baselines."""

__version__ = "0.1.0"
