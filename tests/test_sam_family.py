"""Family invariants of the perturbation wrappers beyond the generic matrix: m-sharpness, SAM-ON's groups,
FSAM's mask, ImbSAM's head/tail split, AMP's projection, FD-GR's finite difference, gradient accumulation and
clipping with the two-call API, GradScaler on every pass."""

from __future__ import annotations

import contextlib
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

import optimlab
import optimlab.grad
from optimlab.wrappers.amp import AMP
from optimlab.wrappers.fdgr import FDGR
from optimlab.wrappers.fsam import FSAM, keep_count
from optimlab.wrappers.imbsam import ImbSAM, split_losses
from optimlab.wrappers.sam import SAM, SAMON, norm_layer_param_groups
from tests import _harness as H
from tests.reference.amp import amp as amp_ref
from tests.reference.imbsam import imbsam_split
from tests.reference.sam import sam as sam_ref
from tests.reference.sam import sam_m_sharpness


def _data(seed=0, n=32, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


def _twins(seed=0):
    a, b = _mlp(seed), _mlp(seed)
    b.load_state_dict(a.state_dict())
    return a, b


def _closure(opt, loss_fn, scaler=None):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        return loss

    return closure


def _functional(model, x, y):
    """loss_fn(list of tensors) evaluating ``model``'s architecture with those parameters (for references)."""
    names = [n for n, _ in model.named_parameters()]

    def loss_fn(ps):
        return F.cross_entropy(torch.func.functional_call(model, dict(zip(names, ps)), (x,)), y)

    return loss_fn


def _assert_params(a, b, **tol):
    for p, q in zip(
        a.parameters() if hasattr(a, "parameters") else a, b.parameters() if hasattr(b, "parameters") else b
    ):
        torch.testing.assert_close(p.detach(), q.detach(), **(tol or dict(rtol=1e-12, atol=1e-14)))


# ------------------------------------------------------------------------------------------------ m-sharpness
def test_m_sharpness_matches_the_reference_and_m1_is_plain_sam():
    model, plain = _twins()
    x, y = _data()
    halves = [(x[:16], y[:16]), (x[16:], y[16:])]
    hp = dict(lr=0.1, momentum=0.9, rho=0.2)
    opt = SAM(model.parameters(), **hp)
    params = [p.detach().clone() for p in model.parameters()]
    states = [{} for _ in params]
    calls = []

    def closure(k):
        calls.append(k)
        loss = F.cross_entropy(model(halves[k][0]), halves[k][1])
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure, micro_batches=2)
        fns = [_functional(model, xb, yb) for xb, yb in halves]
        params, states = sam_m_sharpness(params, fns, states, [{"base": "sgd", **hp}] * len(params))
    assert calls == [0, 0, 1, 1] * 3, "each micro-batch is evaluated twice, at w and at its own w + ε"
    _assert_params(list(model.parameters()), params)
    # one micro-batch is plain SAM, bit for bit
    ref = _mlp(0)
    opt_m = SAM(plain.parameters(), **hp)
    opt_r = SAM(ref.parameters(), **hp)
    for _ in range(2):
        opt_m.step(lambda k: F.cross_entropy(plain(x), y).backward(), micro_batches=1)
        opt_r.step(_closure(opt_r, lambda: F.cross_entropy(ref(x), y)))
    for p, q in zip(plain.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_m_sharpness_averages_other_wrappers_too():
    model = _mlp()
    x, y = _data()
    opt = FDGR(model.parameters(), lr=0.1, gamma=0.05, h=0.2)
    loss = opt.step(
        lambda k: F.cross_entropy(model(x[k::2]), y[k::2]).backward() or torch.tensor(float(k)), micro_batches=2
    )
    assert torch.equal(loss, torch.tensor(0.5))
    with pytest.raises(ValueError, match="micro_batches"):
        opt.step(lambda k: None, micro_batches=0)


# ------------------------------------------------------------------------------------------------ SAM-ON
class _NormNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(5, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.fc2 = torch.nn.Linear(8, 8)
        self.ln = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.ln(torch.tanh(self.fc2(torch.tanh(self.bn(self.fc1(x)))))))


def test_norm_layer_param_groups_flag_exactly_the_normalization_parameters():
    net = _NormNet()
    groups = norm_layer_param_groups(net, weight_decay=5e-4)
    norm_ids = {id(p) for m in (net.bn, net.ln) for p in m.parameters()}
    assert [g["perturb"] for g in groups] == [True, False]
    assert {id(p) for p in groups[0]["params"]} == norm_ids
    assert len(groups[1]["params"]) == 6 and all(g["weight_decay"] == 5e-4 for g in groups)
    custom = norm_layer_param_groups(net, is_norm=lambda name, p, m: name == "head.bias")
    assert any(p is net.head.bias for p in custom[0]["params"])


def test_sam_on_perturbs_only_the_norm_layers_with_norm_rho_and_updates_everything():
    torch.manual_seed(0)
    net = _NormNet().double()
    x, y = _data()
    opt = SAMON(net, lr=0.1, momentum=0.9, rho=0.3)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    F.cross_entropy(net(x), y).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    opt.first_step()
    moved = {n: p.detach() - before[n] for n, p in net.named_parameters()}
    norm_names = [n for n in before if n.startswith(("bn.", "ln."))]
    for n, d in moved.items():
        if n not in norm_names:
            assert torch.equal(d, torch.zeros_like(d)), f"{n} was perturbed"
    eps = torch.cat([moved[n].flatten() for n in norm_names])
    g = torch.cat([grads[n].flatten() for n in norm_names])
    torch.testing.assert_close(eps.norm(), torch.tensor(0.3, dtype=torch.float64), rtol=1e-10, atol=0)
    torch.testing.assert_close(eps, 0.3 * g / g.norm(), rtol=1e-9, atol=1e-12)
    F.cross_entropy(net(x), y).backward()
    opt.second_step()
    # every parameter is updated (fc1.bias feeds a BatchNorm: its gradient is 0)
    assert all(not torch.equal(p.detach(), before[n]) for n, p in net.named_parameters() if n != "fc1.bias")


def test_sam_on_matches_the_reference_with_mixed_groups():
    net = _mlp()
    x, y = _data()
    params0 = [p.detach().clone() for p in net.parameters()]
    # the biases play the normalization parameters here
    groups = [
        {"params": [net[0].weight, net[2].weight], "perturb": False},
        {"params": [net[0].bias, net[2].bias], "perturb": True},
    ]
    hp = dict(lr=0.1, momentum=0.8, weight_decay=0.01, rho=0.4)
    opt = SAMON(groups, **hp)
    order = [net[0].weight, net[2].weight, net[0].bias, net[2].bias]
    index = [next(i for i, q in enumerate(net.parameters()) if q is p) for p in order]
    params = [params0[i] for i in index]
    states = [{} for _ in params]
    per_param = [{"base": "sgd", **hp, "perturb": i >= 2} for i in range(4)]
    names = [n for n, _ in net.named_parameters()]

    def loss_of(ps):
        full = [None] * 4
        for i, p in zip(index, ps):
            full[i] = p
        return F.cross_entropy(torch.func.functional_call(net, dict(zip(names, full)), (x,)), y)

    for _ in range(3):
        opt.step(_closure(opt, lambda: F.cross_entropy(net(x), y)))
        params, states = sam_ref(params, loss_of, states, per_param)
    _assert_params(order, params)


# ------------------------------------------------------------------------------------------------ FSAM
def test_fsam_mask_is_bool_of_the_right_density_refreshed_every_interval_and_checkpointed():
    model = _mlp()
    x, y = _data()
    opt = FSAM(model.parameters(), base="sgd", lr=0.05, rho=0.1, sparsity=0.75, mask_interval=3)
    numel = sum(p.numel() for p in model.parameters())
    masks = []
    for t in range(7):
        xb, yb = x[(t * 5) % 16 :][:16], y[(t * 5) % 16 :][:16]  # a different batch (gradient) every step
        opt.step(_closure(opt, lambda xb=xb, yb=yb: F.cross_entropy(model(xb), yb)))
        m = [opt.state[p]["fisher_mask"].clone() for p in model.parameters()]
        assert all(x.dtype == torch.bool for x in m)
        assert sum(int(x.sum()) for x in m) == keep_count(numel, 0.75)
        masks.append(m)
    changed = [not all(torch.equal(a, b) for a, b in zip(masks[t - 1], masks[t])) for t in range(1, 7)]
    assert changed == [False, False, True, False, False, True], "refreshed at steps 1, 4, 7 only"
    sd = H.roundtrip(opt.state_dict())
    assert any(v.dtype == torch.bool for s in sd["state"].values() for v in s.values())
    clone = FSAM(_mlp().parameters(), base="sgd", lr=0.05, rho=0.1, sparsity=0.75, mask_interval=3)
    clone.load_state_dict(sd)
    for p, q in zip(model.parameters(), clone.param_groups[0]["params"]):
        assert torch.equal(opt.state[p]["fisher_mask"], clone.state[q]["fisher_mask"])
        assert float(clone.state[q]["step"]) == 7


def test_fsam_perturbation_is_masked_sam_and_update_mask_takes_scores():
    model = _mlp()
    x, y = _data()
    opt = FSAM(model.parameters(), base="sgd", lr=0.05, rho=0.2, sparsity=0.5, mask_interval=100)
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    pairs = opt.perturbation()
    g = torch.cat([x.flatten() for x in grads])
    eps = torch.cat([e.flatten() for _, e in pairs])
    mask = torch.cat([opt.state[p]["fisher_mask"].flatten() for p in model.parameters()])
    torch.testing.assert_close(eps, 0.2 * g * mask / g.norm(), rtol=1e-10, atol=1e-15)
    assert eps.norm() <= 0.2 + 1e-12
    kept = (g**2)[mask]
    assert kept.min() >= (g**2)[~mask].max(), "the mask keeps the largest g²"
    scores = [torch.full(p.shape, float(i), dtype=torch.float64) for i, p in enumerate(model.parameters())]
    opt.update_mask(scores)
    last = opt.state[list(model.parameters())[-1]]["fisher_mask"]
    assert last.all(), "the largest scores (the last tensor's) are kept"
    with pytest.raises(ValueError, match="one tensor per parameter"):
        opt.update_mask(scores[:-1])


# ------------------------------------------------------------------------------------------------ ImbSAM
def _imb_closure(model, x, y, tail):
    return lambda: split_losses(F.cross_entropy(model(x), y, reduction="none"), torch.isin(y, tail))


def test_imbsam_head_tail_split_matches_the_reference():
    model = _mlp()
    x, y = _data()
    tail = torch.tensor([2])
    hp = dict(lr=0.05, momentum=0.9, weight_decay=1e-3, rho=0.1)
    opt = ImbSAM(model.parameters(), **hp)
    params = [p.detach().clone() for p in model.parameters()]
    states = [{} for _ in params]
    names = [n for n, _ in model.named_parameters()]
    is_tail = torch.isin(y, tail)

    def part(which):
        def fn(ps):
            losses = F.cross_entropy(torch.func.functional_call(model, dict(zip(names, ps)), (x,)), y, reduction="none")
            return split_losses(losses, is_tail)[which]

        return fn

    for _ in range(3):
        loss = opt.step(_imb_closure(model, x, y, tail))
        params, states = imbsam_split(params, part(0), part(1), states, [{"base": "sgd", **hp}] * len(params))
    _assert_params(list(model.parameters()), params)
    assert loss.ndim == 0 and not loss.requires_grad
    assert all(not s.get("head_grad") for s in opt.state.values())


def test_imbsam_two_call_api_equals_the_closure_api_and_a_plain_closure_is_sam():
    a, b = _twins()
    x, y = _data()
    tail = torch.tensor([0, 2])
    opt_a, opt_b = ImbSAM(a.parameters(), lr=0.05, rho=0.1), ImbSAM(b.parameters(), lr=0.05, rho=0.1)
    for _ in range(2):
        opt_a.step(_imb_closure(a, x, y, tail))
        opt_b.zero_grad()
        head, tail_loss = _imb_closure(b, x, y, tail)()
        head.backward(retain_graph=True)
        opt_b.stash_head_gradient()
        tail_loss.backward()
        opt_b.first_step()
        _imb_closure(b, x, y, tail)()[1].backward()
        opt_b.second_step()
    _assert_params(a, b, rtol=0, atol=0)
    c, d = _twins()
    opt_c, opt_d = ImbSAM(c.parameters(), lr=0.05, rho=0.1), SAM(d.parameters(), lr=0.05, rho=0.1)
    for _ in range(2):
        opt_c.step(_closure(opt_c, lambda: F.cross_entropy(c(x), y)))
        opt_d.step(_closure(opt_d, lambda: F.cross_entropy(d(x), y)))
    _assert_params(c, d, rtol=0, atol=0)


def test_imbsam_refuses_a_local_first_pass_and_other_wrappers_refuse_pairs():
    model = _mlp()
    x, y = _data()
    opt = ImbSAM(model.parameters(), lr=0.05)
    with pytest.raises(RuntimeError, match="no_sync"):
        opt.step(_imb_closure(model, x, y, torch.tensor([1])), no_sync=contextlib.nullcontext)
    with pytest.raises(TypeError, match="ImbSAM"):
        SAM(model.parameters(), lr=0.05).step(_imb_closure(model, x, y, torch.tensor([1])))


# ------------------------------------------------------------------------------------------------ AMP
def test_amp_one_inner_step_is_sam_or_usam_depending_on_the_radius():
    x, y = _data()
    for epsilon, inner_lr, twin_kwargs in ((0.05, 1.0, dict(rho=0.05)), (10.0, 0.1, dict(rho=0.1, normalize=False))):
        a, b = _twins()
        opt_a = AMP(a.parameters(), lr=0.1, momentum=0.9, epsilon=epsilon, inner_lr=inner_lr)
        opt_b = SAM(b.parameters(), lr=0.1, momentum=0.9, **twin_kwargs)
        for _ in range(3):
            opt_a.step(_closure(opt_a, lambda a=a: F.cross_entropy(a(x), y)))
            opt_b.step(_closure(opt_b, lambda b=b: F.cross_entropy(b(x), y)))
        _assert_params(a, b)


@pytest.mark.parametrize("per_tensor", [False, True])
def test_amp_stays_in_the_ball_calls_the_closure_n_plus_1_times_and_matches_the_reference(per_tensor):
    model = _mlp()
    x, y = _data()
    hp = dict(lr=0.05, momentum=0.9, epsilon=0.2, inner_lr=0.5, inner_steps=3, per_tensor=per_tensor)
    opt = AMP(model.parameters(), **hp)
    params = [p.detach().clone() for p in model.parameters()]
    states = [{} for _ in params]
    radii = []
    calls = []
    orig_first = opt.first_step

    def first_step(scaler=None):
        orig_first(scaler)
        d = [p.detach() - opt.state[p]["w"] for p in model.parameters()]
        radii.append(
            [x.norm().item() for x in d] if per_tensor else [torch.cat([x.flatten() for x in d]).norm().item()]
        )

    opt.first_step = first_step
    loss_fn = _functional(model, x, y)
    for _ in range(2):
        opt.step(lambda: calls.append(1) or _closure(opt, lambda: F.cross_entropy(model(x), y))())
        params, states = amp_ref(params, loss_fn, states, [{"base": "sgd", **hp}] * len(params))
    assert len(calls) == 2 * 4
    assert max(max(r) for r in radii) <= 0.2 + 1e-12 and max(max(r) for r in radii) > 0.2 - 1e-9
    _assert_params(list(model.parameters()), params, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ FD-GR
def _quadratic(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h = a @ a.T / 6 + torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    return (lambda w: 0.5 * w @ h @ w - b @ w), h


@pytest.mark.parametrize("variant", ["forward", "backward"])
def test_fdgr_is_exact_gradient_regularization_on_a_quadratic(variant):
    f, _ = _quadratic()
    w = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    twin = w.detach().clone().requires_grad_(True)
    gamma = 0.05
    opt = FDGR([w], base="sgd", lr=0.1, momentum=0.0, gamma=gamma, h=0.3, variant=variant)
    sgd = optimlab.create("sgd", [twin], lr=0.1, momentum=0.0)
    for _ in range(5):
        opt.step(_closure(opt, lambda: f(w)))
        # exact GR by double backprop: ∇(f + γ/2 ‖∇f‖²)
        sgd.zero_grad()
        (g,) = torch.autograd.grad(f(twin), twin, create_graph=True)
        (f(twin) + 0.5 * gamma * (g * g).sum()).backward()
        sgd.step()
    torch.testing.assert_close(w.detach(), twin.detach(), rtol=1e-12, atol=1e-12)


def test_fdgr_special_cases_and_ddp_refusal():
    x, y = _data()
    a, b = _twins()  # γ = h: unnormalized SAM with ρ = h
    opt_a = FDGR(a.parameters(), lr=0.1, momentum=0.9, gamma=0.2, h=0.2)
    opt_b = SAM(b.parameters(), lr=0.1, momentum=0.9, rho=0.2, normalize=False)
    c, d = _twins()  # γ = 0: the base optimizer on g(w)
    opt_c = FDGR(c.parameters(), lr=0.1, momentum=0.9, gamma=0.0, h=0.2)
    opt_d = optimlab.create("sgd", d.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        for opt, m in ((opt_a, a), (opt_b, b), (opt_c, c), (opt_d, d)):
            opt.step(_closure(opt, lambda m=m: F.cross_entropy(m(x), y)))
    _assert_params(a, b)
    _assert_params(c, d, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no_sync"):
        opt_a.step(_closure(opt_a, lambda: F.cross_entropy(a(x), y)), no_sync=a)


# ------------------------------------------------------------------------------------------------ two-call API
def test_gradient_accumulation_with_the_two_call_api_equals_the_full_batch():
    a, b = _twins()
    x, y = _data()
    opt_a, opt_b = SAM(a.parameters(), lr=0.1, rho=0.1), SAM(b.parameters(), lr=0.1, rho=0.1)
    for _ in range(3):
        opt_a.step(_closure(opt_a, lambda: F.cross_entropy(a(x), y)))
        opt_b.zero_grad()
        for k in range(4):  # 4 accumulated micro-batches per pass
            (F.cross_entropy(b(x[k * 8 : (k + 1) * 8]), y[k * 8 : (k + 1) * 8]) / 4).backward()
        opt_b.first_step()
        for k in range(4):
            (F.cross_entropy(b(x[k * 8 : (k + 1) * 8]), y[k * 8 : (k + 1) * 8]) / 4).backward()
        opt_b.second_step()
    _assert_params(a, b)


def test_clipping_between_passes():
    a, b = _twins()
    x, y = _data()
    opt = SAM(a.parameters(), lr=0.1, momentum=0.9, rho=0.1)
    base = optimlab.create("sgd", b.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(a(x), y).backward()
        # clipping the first pass does not change a normalized perturbation's direction or size
        first = optimlab.grad.clip_grad_norm_(a.parameters(), 1e-3)
        assert first.fraction_clipped == 1
        opt.first_step()
        F.cross_entropy(a(x), y).backward()
        optimlab.grad.clip_grad_norm_(a.parameters(), 0.05)
        perturbed_grads = [p.grad.clone() for p in a.parameters()]
        opt.second_step()
        # by hand: the base on the clipped gradient at w + ε
        for p, g in zip(b.parameters(), perturbed_grads):
            p.grad = g
        base.step()
        torch.testing.assert_close(
            torch.cat([p.detach().flatten() for p in a.parameters()]),
            torch.cat([p.detach().flatten() for p in b.parameters()]),
            rtol=0,
            atol=0,
        )
    c = _mlp()
    c.load_state_dict(_mlp().state_dict())
    opt_c = SAM(c.parameters(), lr=0.1, momentum=0.9, rho=0.1)
    for _ in range(3):  # the same run without clipping the first pass: same trajectory up to rounding
        opt_c.zero_grad()
        F.cross_entropy(c(x), y).backward()
        opt_c.first_step()
        F.cross_entropy(c(x), y).backward()
        optimlab.grad.clip_grad_norm_(c.parameters(), 0.05)
        opt_c.second_step()
    _assert_params(a, c, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ GradScaler
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: AMP(ps, lr=0.1, momentum=0.9, epsilon=0.05, inner_steps=2, inner_lr=0.5),
        lambda ps: FDGR(ps, lr=0.1, momentum=0.9, gamma=0.05, h=0.1),
        lambda ps: FSAM(ps, base="sgd", lr=0.1, sparsity=0.5, mask_interval=2),
    ],
    ids=["amp", "fdgr", "fsam"],
)
def test_grad_scaler_on_every_pass_gives_the_unscaled_result(make):
    a, b = _twins()
    a, b = a.float(), b.float()
    x, y = _data(dtype=torch.float32)
    opt_a, opt_b = make(a.parameters()), make(b.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(3):
        opt_a.step(_closure(opt_a, lambda: F.cross_entropy(a(x), y)))
        opt_b.step(_closure(opt_b, lambda: F.cross_entropy(b(x), y), scaler), scaler=scaler)
        scaler.update()
    _assert_params(a, b, rtol=1e-5, atol=1e-6)
    assert scaler.get_scale() == 2.0**10


def test_grad_scaler_overflow_in_any_pass_skips_the_step_and_unscale_allows_clipping():
    model = _mlp().float()
    x, y = _data(dtype=torch.float32)
    opt = AMP(model.parameters(), lr=0.1, epsilon=0.1, inner_steps=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        calls.append(1)
        if len(calls) == 2:  # the second ascent pass overflows
            next(model.parameters()).grad[0, 0] = float("nan")
        return loss

    opt.step(closure, scaler=scaler)
    scaler.update()
    assert len(calls) == 3
    _assert_params(model, before, rtol=0, atol=0)
    assert scaler.get_scale() < 2.0**10
    assert all(not s for s in opt.state.values())
    # unscale_ between backward and second_step: clip the unscaled gradient
    a, b = _twins()
    a, b = a.float(), b.float()
    opt_a, opt_b = SAM(a.parameters(), lr=0.1, rho=0.1), SAM(b.parameters(), lr=0.1, rho=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    for _ in range(2):
        for opt, m, sc in ((opt_a, a, None), (opt_b, b, scaler)):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            (sc.scale(loss) if sc else loss).backward()
            opt.first_step(sc)
            loss = F.cross_entropy(m(x), y)
            (sc.scale(loss) if sc else loss).backward()
            assert opt.unscale_(sc)
            optimlab.grad.clip_grad_norm_(m.parameters(), 0.05)
            opt.second_step(sc)
        scaler.update()
    _assert_params(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ copies
@pytest.mark.parametrize("name", ["sam", "fsam", "imbsam", "amp", "fdgr", "orthograd"])
def test_pickled_and_deep_copied_wrappers_keep_working(name):
    model = _mlp()
    x, y = _data()
    opt = optimlab.create(name, model.parameters())
    for clone_fn in (lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy):
        clone = clone_fn(opt)
        params = [p for g in clone.param_groups for p in g["params"]]
        loss = F.cross_entropy(
            torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()], params)), (x,)), y
        )
        loss.backward()
        if clone.requires_closure:
            clone.first_step()
            F.cross_entropy(
                torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()], params)), (x,)), y
            ).backward()
            clone.second_step()
        else:
            clone.step()


@pytest.mark.parametrize("name", ["amp", "fdgr", "fsam", "imbsam"])
def test_identical_micro_batches_reproduce_the_plain_step(name):
    """Every micro-batch gets the wrapper's whole procedure (AMP's inner steps, FD-GR's stash, FSAM's mask,
    ImbSAM's head gradient): two copies of the batch average to the plain step."""
    a, b = _twins()
    x, y = _data()
    kwargs = {"amp": dict(inner_steps=2, epsilon=0.1, inner_lr=0.5), "fsam": dict(base="sgd", mask_interval=1)}
    opt_a = optimlab.spec(name).cls(a.parameters(), lr=0.05, **kwargs.get(name, {}))
    opt_b = optimlab.spec(name).cls(b.parameters(), lr=0.05, **kwargs.get(name, {}))
    tail = torch.tensor([1])
    for _ in range(2):
        if name == "imbsam":
            opt_a.step(_imb_closure(a, x, y, tail))
            opt_b.step(lambda k: _imb_closure(b, x, y, tail)(), micro_batches=2)
        else:
            opt_a.step(_closure(opt_a, lambda: F.cross_entropy(a(x), y)))
            opt_b.step(lambda k: F.cross_entropy(b(x), y).backward(), micro_batches=2)
    _assert_params(a, b, rtol=0, atol=0)
