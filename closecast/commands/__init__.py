"""Subcommands of the closecast CLI, one module each."""
