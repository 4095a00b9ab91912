"""Outputs: the catalog of published tables and keys, typed rows, plots, artifacts, retention."""
