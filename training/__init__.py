"""Scoring, statistics, reports, and (with torch) the fine-tuning schemes. Importing the package loads nothing heavy."""
