"""Optimizer families; each module holds its classes, its update functions and its registry records."""
