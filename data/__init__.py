"""Corpora, examples, speech subsets and audio I/O. Importing the package loads nothing heavy."""
