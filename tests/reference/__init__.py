"""Plain reference implementations, written from each paper's pseudo-code (not from another library).

Contract: a reference is a function ``ref(param, grad, state, **hparams) -> (new_param, new_state)`` taking the
optimizer's constructor hyperparameters. It is functional (no in-place updates), slow and obvious; ``state`` is
a dict that starts empty and holds a Python-int ``"step"`` plus tensors named exactly like the optimizer's state.

A reference that needs the loss itself (closure-based algorithms: SAM family, Hessian-based methods) is marked
with ``@whole_model`` and has the signature ``ref(params, loss_fn, states, hparams) -> (new_params, new_states)``
over all parameters at once: ``loss_fn(list_of_tensors)`` evaluates the objective, ``hparams[i]`` are the
constructor hyperparameters of parameter i's group.
"""


def whole_model(fn):
    """Mark a reference as taking all parameters and the loss function (see the module docstring)."""
    fn.whole_model = True
    return fn
