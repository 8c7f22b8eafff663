"""Cohorts: many patients evaluated in parallel on Dask distributed (contract section 10)."""
