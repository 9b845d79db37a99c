"""Output formats written by the worker."""
