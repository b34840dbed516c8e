"""Optimizers that wrap a base optimizer (sharpness-aware family, ...)."""
