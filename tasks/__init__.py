"""Thin Prefect tasks: I/O, retries and logging around closecast's plain functions."""
