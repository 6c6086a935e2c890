"""Torch-free scoring and results: SLURP metrics and scorer, seed statistics, the results table and the report.

Imports nothing of ours but ``data``, so the planner, the app and the training code can all use it without torch.
"""
