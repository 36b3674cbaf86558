"""Torch-free client of the safety-landscape service: sweep specs, fleet scheduling, the result store, VISAGE, plots and reports."""
