"""Render a run's result: machine-readable files, and the reports stewards work from."""
