"""Projected Adam (GaLore family), written from the papers' pseudo-code and the authors' codes, in the gradient's
own orientation (the optimizer works in a transposed frame for the "right" case; its moments are stored r × k,
so this reference stores its m × r moments transposed).

GaLore (Zhao et al. 2024, arXiv:2403.03507, Algorithm 2), for W ∈ R^{m×n}:
    if t mod T = 0: U, S, V ← SVD(G_t); P ← U[:, :r] (m < n) or V[:, :r] (m ≥ n, projects the columns)
    R_t ← Pᵀ G_t (left) or G_t P (right);  Adam moments on R_t;  N_t ← m̂/(√v̂ + ε)
    W ← W − η α · (P N_t or N_t Pᵀ);  decoupled decay λ (applied before the step here, as torch's AdamW)
DCT (Modoranu et al. 2025, arXiv:2505.17967): Q = orthonormal DCT-II (built from the cosine formula), columns
    ranked by ‖q_iᵀ X‖₁, top r; on a refresh m ← R m, v ← |R v| with R = Q_newᵀ Q_old.
Online Subspace Descent (Liang et al. 2024, arXiv:2408.12857; authors' ``continuous`` projector): SVD at step 1, then
    after each step P takes a torch-AdamW step on ‖PPᵀĜ − Ĝ‖² + λ‖PᵀP − I‖² (gradient by autograd).
COAP (Xiao et al. 2025, arXiv:2412.00071; authors' code): randomized SVD warm-started from P at t = 1 and every
    T_u·f steps, otherwise every T_u steps P ← P − 0.1·clip(∇[MSE(ĝ, g)·(1 − mean cos(m̂, g))]) (autograd);
    ``restore_state`` (reproject "rotate_sqrt") brings m and √v back to full size and down again.
Refreshes happen at steps t = 1, T + 1, 2T + 1, ... (t counts from 1).
"""

import math

import torch

from tests.reference.adam import adamw

SEED = 3407


def _rank(shape, rank, rank_fraction, project):
    if len(shape) < 2 or not project:
        return None
    m, n = shape[0], math.prod(shape[1:])
    d = min(m, n)
    r = rank if rank_fraction is None else max(1, int(d * rank_fraction))
    return r if r < d else None


def _top(M, left, r):
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return U[:, :r] if left else Vh[:r, :].T  # stored as d × r in both cases


def _dct_matrix(d, dtype):
    """Q[j, i] = c_i cos(π (2j + 1) i / (2d)): column i is the i-th orthonormal DCT-II basis vector."""
    Q = torch.empty(d, d, dtype=torch.float64)
    for i in range(d):
        c = math.sqrt(1.0 / d) if i == 0 else math.sqrt(2.0 / d)
        for j in range(d):
            Q[j, i] = c * math.cos(math.pi * (2 * j + 1) * i / (2 * d))
    return Q.to(dtype)


def _reproject(mode, P_old, P_new, m, v):
    if mode == "none":
        return m, v
    if mode == "reset":
        return torch.zeros_like(m), torch.zeros_like(v)
    C = P_new.T @ P_old
    if mode == "rotate":
        return C @ m, torch.abs(C @ v)
    if mode == "rotate_sqrt":  # COAP restore_state: back to full size with P_old, down with P_new (v via √v)
        full_m, full_sqrt_v = P_old @ m, P_old @ torch.sqrt(v)
        return P_new.T @ full_m, (P_new.T @ full_sqrt_v) ** 2
    raise ValueError(mode)


def _osd_projector_step(P, mP, vP, M, left, t, lr, ratio, wd, ortho):
    """One torch-AdamW step on the online-PCA loss, in the authors' orientation (P is m × r or B = Pᵀ is r × n)."""
    G = M / torch.linalg.norm(M)
    Z = (P if left else P.T).clone().requires_grad_(True)
    if left:
        loss = (
            torch.linalg.norm(Z @ Z.T @ G - G) ** 2
            + ortho * torch.linalg.norm(Z.T @ Z - torch.eye(Z.shape[1], dtype=Z.dtype)) ** 2
        )
    else:
        loss = (
            torch.linalg.norm(G @ Z.T @ Z - G) ** 2
            + ortho * torch.linalg.norm(Z @ Z.T - torch.eye(Z.shape[0], dtype=Z.dtype)) ** 2
        )
    (g,) = torch.autograd.grad(loss, Z)
    g = g if left else g.T
    lr_p = lr * ratio
    tp = t - 1
    b1, b2 = 0.9, 0.999
    mP = b1 * mP + (1 - b1) * g
    vP = b2 * vP + (1 - b2) * g * g
    P = P * (1 - lr_p * wd) - lr_p * (mP / (1 - b1**tp)) / (torch.sqrt(vP / (1 - b2**tp)) + 1e-8)
    return P, mP, vP


def _coap_range_finder(M, left, P):
    """COAP's compute_orthogonal: matrix = G (right) or Gᵀ (left), omega = the current projector (n × r / m × r)."""
    A = M.T if left else M
    Y = A @ P
    Q, _ = torch.linalg.qr(Y)
    _, _, Vh = torch.linalg.svd(Q.T @ A, full_matrices=False)
    return Vh.T


def _coap_gradient_step(M, left, P, m_low, lr):
    """COAP's update_proj: P ← P − lr·clip₁(∇[MSE(ĝ, g)·(1 − mean_rows cos(m̂, g))]) in the authors' orientation."""
    Z = (P if left else P.T).clone().requires_grad_(True)  # left: A (m × r); right: ortho matrix (r × n)
    m_full = Z @ m_low if left else m_low.T @ Z  # the moment back at full size, m × n
    g_hat = Z @ Z.T @ M if left else M @ Z.T @ Z
    loss = torch.nn.functional.mse_loss(g_hat, M)
    loss = loss * (1 - torch.nn.functional.cosine_similarity(m_full, M, dim=1).mean())
    (g,) = torch.autograd.grad(loss, Z)
    norm = torch.linalg.norm(g)
    g = g * min(1.0, 1.0 / (float(norm) + 1e-6))
    Z = Z.detach() - lr * g
    return Z if left else Z.T


def projected(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay,
    projector,
    rank,
    rank_fraction=None,
    project=True,
    update_proj_gap=200,
    scale=0.25,
    reproject="none",
    dct_norm="l1",
    proj_lr_ratio=0.5,
    proj_weight_decay=0.01,
    proj_ortho=0.0,
    proj_lr=0.1,
    reproject_factor=5,
):
    r = _rank(tuple(param.shape), rank, rank_fraction, project)
    if r is None:
        return adamw(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    M = grad.reshape(grad.shape[0], -1)
    mdim, ndim = M.shape
    left = mdim < ndim
    d, k = (mdim, ndim) if left else (ndim, mdim)
    m = state.get("exp_avg", torch.zeros(r, k, dtype=grad.dtype))
    v = state.get("exp_avg_sq", torch.zeros(r, k, dtype=grad.dtype))
    new = {"step": t}

    refresh = (t - 1) % update_proj_gap == 0
    if projector == "svd":
        P = state.get("projector", torch.zeros(d, r, dtype=grad.dtype))
        if refresh:
            P_new = _top(M, left, r)
            m, v = _reproject(reproject, P, P_new, m, v)
            P = P_new
        new["projector"] = P
    elif projector == "dct":
        Q = _dct_matrix(d, grad.dtype)
        idx = state.get("indices", torch.zeros(r, dtype=torch.int32))
        if refresh:
            X = M if left else M.T
            S = Q.T @ X
            scores = S.abs().sum(dim=1) if dct_norm == "l1" else torch.sqrt((S * S).sum(dim=1))
            idx_new = torch.argsort(scores, descending=True, stable=True)[:r].to(torch.int32)
            m, v = _reproject(reproject, Q[:, idx.long()], Q[:, idx_new.long()], m, v)
            idx = idx_new
        new["indices"] = idx
        P = Q[:, idx.long()]
    elif projector == "online_pca":
        P = state.get("projector", torch.zeros(d, r, dtype=grad.dtype))
        mP = state.get("proj_exp_avg", torch.zeros(d, r, dtype=grad.dtype))
        vP = state.get("proj_exp_avg_sq", torch.zeros(d, r, dtype=grad.dtype))
        if t == 1:
            P = _top(M, left, r)
    elif projector == "coap":
        if "projector" in state:
            P = state["projector"]
        else:
            gen = torch.Generator().manual_seed(SEED)
            P = torch.randn(d, r, generator=gen, dtype=torch.float32).to(grad.dtype)
        P_old = P
        if (t - 1) % (update_proj_gap * reproject_factor) == 0:
            P = _coap_range_finder(M, left, P)
            m, v = _reproject(reproject, P_old, P, m, v)
        elif refresh:
            P = _coap_gradient_step(M, left, P, m, proj_lr)
            m, v = _reproject(reproject, P_old, P, m, v)
        new["projector"] = P
    else:
        raise ValueError(projector)

    # Adam on the projected gradient, in GaLore's orientation (left: r × n; right: m × r)
    low = P.T @ M if left else M @ P
    m_o, v_o = (m, v) if left else (m.T, v.T)
    m_o = beta1 * m_o + (1 - beta1) * low
    v_o = beta2 * v_o + (1 - beta2) * low * low
    N = (m_o / (1 - beta1**t)) / (torch.sqrt(v_o / (1 - beta2**t)) + eps)
    full = P @ N if left else N @ P.T
    new_param = param * (1 - lr * weight_decay) - lr * scale * full.reshape(param.shape)
    new["exp_avg"], new["exp_avg_sq"] = (m_o, v_o) if left else (m_o.T, v_o.T)

    if projector == "online_pca":
        if t > 1:
            P, mP, vP = _osd_projector_step(P, mP, vP, M, left, t, lr, proj_lr_ratio, proj_weight_decay, proj_ortho)
        new.update(projector=P, proj_exp_avg=mP, proj_exp_avg_sq=vP)
    return new_param, new


def galore(param, grad, state, **hp):
    return projected(param, grad, state, **hp)


def galore_dct(param, grad, state, **hp):
    return projected(param, grad, state, **hp)


def online_subspace_descent(param, grad, state, **hp):
    return projected(param, grad, state, **hp)


def coap(param, grad, state, **hp):
    return projected(param, grad, state, **hp)
