"""Jupyter extension for spalloc: ``%load_ext spalloc_nb``."""
