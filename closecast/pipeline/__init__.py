"""Per-ticker and per-run pipeline steps: plain functions over a storage root, no Prefect."""
