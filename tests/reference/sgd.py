"""SGD with heavy-ball momentum and the Nesterov form of Sutskever et al. (2013), in torch's buffer convention
(the buffer starts at the first gradient)."""


def sgd(param, grad, state, *, lr, momentum, dampening, weight_decay, nesterov):
    g = grad + weight_decay * param
    t = state.get("step", 0) + 1
    if momentum == 0:
        return param - lr * g, {"step": t}
    b = g if t == 1 else momentum * state["momentum_buffer"] + (1 - dampening) * g
    direction = g + momentum * b if nesterov else b
    return param - lr * direction, {"step": t, "momentum_buffer": b}
