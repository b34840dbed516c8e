"""Plain reference implementations, written from each paper's pseudo-code (not from another library).

Contract: a reference is a function ``ref(param, grad, state, **hparams) -> (new_param, new_state)`` taking the
optimizer's constructor hyperparameters. It is functional (no in-place updates), slow and obvious; ``state`` is
a dict that starts empty and holds a Python-int ``"step"`` plus tensors named exactly like the optimizer's state.
"""
