"""Thin Prefect tasks: I/O, retries and logging around closecast's plain functions.

Every task is declared with ``cache_policy=NO_CACHE``: each one reads or writes storage, so
a result cached by its inputs would skip work that must happen, and Prefect's default policy
hashes every input of every call to compute that key (a run's rows at 500 tickers).
"""
