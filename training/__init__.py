"""The fine-tuning schemes, the training loop, run folders, sweeps and plots. Importing the package loads nothing heavy."""
