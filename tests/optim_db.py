"""Test-only facts of every registered algorithm, kept beside the tests (as torch keeps its ``OptimizerInfo``
records in torch/testing/_internal/common_optimizers.py): the reference implementation, the hyperparameters
the matrix tests with, the convergence settings and the torch.optim equivalent. The registry record
(``optimlab.spec(name)``) keeps what a user needs; tests/test_optim_db.py checks the two name the same
algorithms.

Adding an algorithm: one ``add(...)`` call below, in the section of its module.
"""

from __future__ import annotations

from typing import Any

import torch

import optimlab
from optimlab.curvature.newton_schulz import QUINTIC_MUON
from tests.optim_info import OptimInfo, TorchParity

#: the convergence settings most adaptive methods share
CONVERGENCE = {"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 0.05}}

DB: dict[str, OptimInfo] = {}


def add(name: str, **fields: Any) -> OptimInfo:
    """Record the test facts of the registered algorithm ``name``."""
    if name in DB:
        raise ValueError(f"{name!r} already has a test record")
    DB[name] = OptimInfo(**fields)
    return DB[name]


def info(name: str) -> OptimInfo:
    """The test record of ``name`` (``KeyError`` naming the file to edit otherwise)."""
    if name not in DB:
        raise KeyError(f"{name!r} has no test record: add one to tests/optim_db.py")
    return DB[name]


def test_hparams(name: str) -> dict[str, Any]:
    """The paper's defaults overridden by the record's test hyperparameters."""
    return {**optimlab.spec(name).defaults, **info(name).test_hparams}


def supports_complex(name: str) -> bool:
    """Whether the matrix tests ``name`` on complex parameters."""
    stated = info(name).complex
    return bool(getattr(optimlab.spec(name).cls, "supports_complex", False)) if stated is None else stated


# ----------------------------------------------------------------------------- optim/adabelief.py
add(
    "adabelief",
    reference="tests.reference.adabelief:adabelief",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, decoupled_weight_decay=False),
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/adafactor.py
add(
    "adafactor",
    reference="tests.reference.adafactor:adafactor",
    torch_equivalent=TorchParity("torch.optim.Adafactor"),
    test_hparams=dict(lr=2e-2, beta2_decay=-0.7, eps=(None, 1e-3), d=1.0, weight_decay=0.1),
    convergence_hparams={"quadratic": {"lr": 1.0}, "rosenbrock": {"lr": 0.05, "steps": 10000}},
)

# ----------------------------------------------------------------------------- optim/adahessian.py
add(
    "adahessian",
    reference="tests.reference.adahessian:adahessian",
    test_hparams=dict(
        lr=0.05,
        betas=(0.8, 0.9),
        eps=1e-3,
        weight_decay=0.05,
        hessian_power=0.7,
        update_period=2,
        hessian_samples=2,
    ),
    convergence_hparams={
        "quadratic": {"lr": 0.3, "steps": 300},
        "rosenbrock": {"lr": 0.15, "hessian_power": 0.5, "steps": 3000},
    },
)

# ----------------------------------------------------------------------------- optim/adam.py

add(
    "adam",
    reference="tests.reference.adam:adam",
    torch_equivalent=TorchParity("torch.optim.Adam"),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams=CONVERGENCE,
)
add(
    "adamw",
    reference="tests.reference.adam:adamw",
    torch_equivalent=TorchParity("torch.optim.AdamW"),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams=CONVERGENCE,
)
add(
    "amsgrad",
    reference="tests.reference.adam:amsgrad",
    torch_equivalent=TorchParity(
        "torch.optim.Adam", torch_kwargs={"amsgrad": True}, our_kwargs={"bias_correction": True}
    ),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams=CONVERGENCE,
)
add(
    "adamax",
    reference="tests.reference.adam:adamax",
    torch_equivalent=TorchParity("torch.optim.Adamax"),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 0.1}},
)

# ----------------------------------------------------------------------------- optim/adam_cm.py
add(
    "adam_cm",
    reference="tests.reference.adam_cm:adam_cm",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, capacity=3, priority="tensor"),
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 2e-3, "steps": 15000}},
)

# ----------------------------------------------------------------------------- optim/ademamix.py
add(
    "ademamix",
    reference="tests.reference.ademamix:ademamix",
    # T = 10 < 20 parity steps: both the warm-up and the post-warm-up branches run
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95, 0.99), alpha=5.0, t_alpha_beta3=10, eps=1e-6, weight_decay=0.1),
    # the slow EMA's half-life must fit the run (β3 = 0.9999 remembers ~7000 steps): β3 = 0.999, T = steps
    convergence_hparams={
        "quadratic": {"lr": 0.05, "betas": (0.9, 0.999, 0.999), "t_alpha_beta3": 3000, "steps": 3000},
        "rosenbrock": {"lr": 0.05, "betas": (0.9, 0.999, 0.999), "t_alpha_beta3": 5000, "steps": 5000},
    },
)

# ----------------------------------------------------------------------------- optim/exadam.py
add(
    "exadam",
    reference="tests.reference.exadam:exadam",
    # the dynamic step size is the branch with extra math (log of the step under compile); the default
    # branch gets its own reference-parity test in tests/test_exadam.py
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, dynamic_step_size=True),
    convergence_hparams={"quadratic": {"lr": 0.05}, "rosenbrock": {"lr": 0.01}},
)

# ----------------------------------------------------------------------------- optim/grams.py
add(
    "grams",
    reference="tests.reference.grams:grams",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/lion.py
add(
    "lion",
    reference="tests.reference.lion:lion",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.5),
    convergence_hparams={
        "quadratic": {"lr": 1e-2, "steps": 1000},
        "rosenbrock": {"lr": 1e-2, "steps": 5000},
    },
)
add(
    "lion_kappa",
    reference="tests.reference.lion:lion_kappa",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.5),
    convergence_hparams={
        "quadratic": {"lr": 3e-2, "steps": 1000},
        "rosenbrock": {"lr": 1e-2, "steps": 5000},
    },
)
add(
    "lion_kappa_huber",
    reference="tests.reference.lion:lion_kappa",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.5, huber_delta=0.3),
    convergence_hparams={
        "quadratic": {"lr": 1e-1, "steps": 1000},
        "rosenbrock": {"lr": 2e-2, "steps": 5000},
    },
)

# ----------------------------------------------------------------------------- optim/lowprec.py
LOWPREC_ADAM_TEST = dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
LOWPREC_LION_TEST = dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
LOWPREC_LION_CONV = {"quadratic": {"lr": 0.01, "steps": 2000}, "rosenbrock": {"lr": 3e-3, "steps": 6000}}
LOWPREC_8BIT_TEST = dict(block_size=4, min_8bit_size=2)

add(
    "adamw_bf16",
    reference="tests.reference.lowprec:adamw_bf16",
    test_hparams=LOWPREC_ADAM_TEST,
    convergence_hparams=CONVERGENCE,
    low_precision_state=True,
)
add(
    "lion_bf16",
    reference="tests.reference.lowprec:lion_bf16",
    test_hparams=LOWPREC_LION_TEST,
    convergence_hparams=LOWPREC_LION_CONV,
    low_precision_state=True,
)
add(
    "adamw_8bit",
    reference="tests.reference.lowprec:adamw_8bit",
    test_hparams={**LOWPREC_ADAM_TEST, **LOWPREC_8BIT_TEST},
    convergence_hparams=CONVERGENCE,
    low_precision_state=True,
)
add(
    "lion_8bit",
    reference="tests.reference.lowprec:lion_8bit",
    test_hparams={**LOWPREC_LION_TEST, **LOWPREC_8BIT_TEST},
    convergence_hparams=LOWPREC_LION_CONV,
    low_precision_state=True,
)

# ----------------------------------------------------------------------------- optim/muon.py
add(
    "muon",
    reference="tests.reference.muon:muon",
    test_hparams=dict(
        lr=0.05,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.1,
        ns_coefficients=QUINTIC_MUON,
        ns_steps=5,
        eps=1e-7,
        eps_mode="add",
        adjust_lr="match_rms_adamw",
        ns_dtype="float64",
        fallback="adamw",
        fallback_options={"betas": (0.8, 0.95), "eps": 1e-8},
    ),
    # the generic problems are vectors, i.e. fallback (AdamW) parameters; tests/test_muon.py checks Muon
    # itself on matrix problems
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/nadam.py
add(
    "nadam",
    reference="tests.reference.nadam:nadam",
    torch_equivalent=TorchParity("torch.optim.NAdam"),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, momentum_decay=0.05),
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/oasis.py
add(
    "oasis",
    reference="tests.reference.oasis:oasis",
    test_hparams=dict(lr=0.8, eta0=0.05, beta=0.9, alpha=1e-3, init_samples=3, hessian_samples=2),
    # the Rosenbrock run is deterministic: previous_gradient is the same algorithm at one closure call a step
    convergence_hparams={
        "quadratic": {"steps": 100},
        "rosenbrock": {"lipschitz": "previous_gradient", "steps": 4000},
    },
)

# ----------------------------------------------------------------------------- optim/optimistic_amsgrad.py
add(
    "optimistic_amsgrad",
    reference="tests.reference.optimistic_amsgrad:optimistic_amsgrad",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, span=3, bias_correction=True),
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 0.1, "steps": 8000}},
)
add(
    "optimistic_amsgrad_last",
    reference="tests.reference.optimistic_amsgrad:optimistic_amsgrad",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 0.1, "steps": 8000}},
)

# ----------------------------------------------------------------------------- optim/projected.py
PROJECTED_TEST = dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1, rank=1, update_proj_gap=3)
# quadratic/Rosenbrock are 1-D (plain AdamW path); a projected convergence test lives in tests/test_projected.py

add(
    "galore",
    reference="tests.reference.projected:galore",
    test_hparams=PROJECTED_TEST,
    convergence_hparams=CONVERGENCE,
)
add(
    "galore_dct",
    reference="tests.reference.projected:galore_dct",
    test_hparams=PROJECTED_TEST,
    convergence_hparams=CONVERGENCE,
)
add(
    "online_subspace_descent",
    reference="tests.reference.projected:online_subspace_descent",
    test_hparams={**PROJECTED_TEST, "proj_lr_ratio": 2.0, "proj_ortho": 0.1},
    convergence_hparams=CONVERGENCE,
)
add(
    "coap",
    reference="tests.reference.projected:coap",
    test_hparams={**PROJECTED_TEST, "update_proj_gap": 2, "reproject_factor": 3, "reproject": "rotate_sqrt"},
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/psgd.py
add(
    "psgd_kron",
    reference="tests.reference.psgd:psgd_kron",
    test_hparams=dict(
        lr=0.02, momentum=0.9, weight_decay=0.1, lr_preconditioner=0.2, preconditioner_update_probability=0.6
    ),
    convergence_hparams={"quadratic": {"lr": 0.05, "momentum": 0.9}, "rosenbrock": {"lr": 0.01, "momentum": 0.9}},
)

# ----------------------------------------------------------------------------- optim/radam.py
add(
    "radam",
    reference="tests.reference.radam:radam",
    torch_equivalent=TorchParity("torch.optim.RAdam", our_kwargs={"rho_threshold": 5.0}),
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, decoupled_weight_decay=True),
    # Rosenbrock: the first 5 steps are plain momentum SGD (|g| ≈ 160 at the start), so lr must stay small;
    # β2 = 0.99 then lets the adaptive phase follow the valley within the budget
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 5e-3, "betas": (0.9, 0.99)}},
)

# ----------------------------------------------------------------------------- optim/sania.py
add(
    "sania",
    reference="tests.reference.sania:sania",
    # the generic objective is bounded below by −0.1 per coordinate: f* = −5 is a valid lower bound
    test_hparams=dict(lr=0.8, preconditioner="adam_sqr", beta=0.9, eps=1e-3, f_star=-5.0),
    # AdaGrad-SQR's Σg² grows linearly, so its steps shrink like 1/t: the convergence runs use Adam-SQR
    convergence_hparams={
        "quadratic": {"preconditioner": "adam_sqr", "steps": 300},
        "rosenbrock": {"preconditioner": "adam_sqr", "beta": 0.99, "steps": 3000},
    },
)
add(
    "sania_hutchinson",
    reference="tests.reference.sania:sania",
    # the objective's curvature crosses 0: eps = 0.5 keeps B̂ away from it (tame, compile-comparable dynamics)
    test_hparams=dict(lr=0.8, beta=0.9, eps=0.5, f_star=-5.0, hessian_samples=2),
    convergence_hparams={"quadratic": {"steps": 300}, "rosenbrock": {"beta": 0.5, "steps": 4000}},
)

# ----------------------------------------------------------------------------- optim/scion.py
add(
    "scion",
    reference="tests.reference.scion:scion",
    test_hparams=dict(lr=0.02, momentum=0.3, scale=2.0, ns_dtype="float64"),
    # constrained (the default); the minimizers lie inside the radius-5 RMS ball
    convergence_hparams={"quadratic": {"lr": 0.01, "scale": 5.0}, "rosenbrock": {"lr": 0.002, "scale": 5.0}},
)

# ----------------------------------------------------------------------------- optim/sgd.py
add(
    "sgd",
    reference="tests.reference.sgd:sgd",
    torch_equivalent=TorchParity("torch.optim.SGD"),
    test_hparams=dict(lr=1e-2, momentum=0.8, dampening=0.1, weight_decay=0.05),
    convergence_hparams={"quadratic": {"lr": 0.05}, "rosenbrock": {"lr": 1e-3}},
)
add(
    "sgd_nesterov",
    reference="tests.reference.sgd:sgd",
    torch_equivalent=TorchParity("torch.optim.SGD"),
    test_hparams=dict(lr=1e-2, momentum=0.8, weight_decay=0.05, nesterov=True),
    convergence_hparams={"quadratic": {"lr": 0.05}, "rosenbrock": {"lr": 1e-3}},
)

# ----------------------------------------------------------------------------- optim/shampoo.py
add(
    "shampoo",
    reference="tests.reference.shampoo:shampoo",
    test_hparams=dict(
        lr=0.05,
        momentum=0.5,
        beta2=0.9,
        eps=1e-3,
        weight_decay=0.05,
        update_freq=3,
        max_precond_dim=4,
        grafting="adagrad",
    ),
    convergence_hparams={"quadratic": {"lr": 0.5}, "rosenbrock": {"lr": 0.1, "momentum": 0.9}},
)

# ----------------------------------------------------------------------------- optim/soap.py
add(
    "soap",
    reference="tests.reference.soap:soap",
    test_hparams=dict(
        lr=0.01, betas=(0.9, 0.95), weight_decay=0.1, precondition_frequency=6, precondition_1d=True, eps=1e-6
    ),
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- optim/sophia.py
add(
    "sophia_h",
    reference="tests.reference.sophia:sophia_h",
    test_hparams=dict(lr=0.02, betas=(0.8, 0.9), rho=0.5, weight_decay=0.1, update_period=3, hessian_samples=2),
    convergence_hparams={
        "quadratic": {"lr": 0.1, "weight_decay": 0.0, "steps": 300},
        "rosenbrock": {"lr": 0.1, "weight_decay": 0.0, "steps": 1500},
    },
)
add(
    "sophia_g",
    reference="tests.reference.sophia:sophia_g",
    # the generic objectives have no logits: the matrix runs the squared-gradient estimator; the
    # Gauss-Newton-Bartlett path has its own parity and resume tests (tests/test_sophia.py)
    test_hparams=dict(
        lr=0.02, betas=(0.8, 0.9), rho=0.5, weight_decay=0.1, update_period=3, estimator="squared_gradient"
    ),
    convergence_hparams={
        "quadratic": {
            "lr": 0.05,
            "rho": 0.5,
            "weight_decay": 0.0,
            "update_period": 2,
            "estimator": "squared_gradient",
            "steps": 500,
        },
        "rosenbrock": {"lr": 0.1, "weight_decay": 0.0, "estimator": "squared_gradient", "steps": 1500},
    },
)

# ----------------------------------------------------------------------------- optim/subset_norm.py

add(
    "adamw_sn",
    reference="tests.reference.subset_norm:adamw_sn",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1),
    convergence_hparams=CONVERGENCE,
)
add(
    "adamw_snsm",
    reference="tests.reference.subset_norm:adamw_sn",
    test_hparams=dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1, rank=1, update_proj_gap=3, subset_size=4),
    convergence_hparams=CONVERGENCE,
)

# ----------------------------------------------------------------------------- wrappers/amp.py
add(
    "amp",
    reference="tests.reference.amp:amp",
    # two ascent steps with a radius that binds on the first step and not always later
    test_hparams=dict(lr=0.05, momentum=0.8, weight_decay=0.01, epsilon=0.3, inner_lr=0.05, inner_steps=2),
    convergence_hparams={
        "quadratic": {"lr": 0.05, "epsilon": 1e-3},
        "rosenbrock": {"lr": 1e-3, "epsilon": 1e-4},
    },
    complex=False,
)

# ----------------------------------------------------------------------------- wrappers/fdgr.py
for _name in ("fdgr", "fdgr_backward"):
    add(
        _name,
        reference="tests.reference.fdgr:fdgr",
        test_hparams=dict(lr=0.05, momentum=0.8, weight_decay=0.01, gamma=0.05, h=0.2),
        convergence_hparams={
            "quadratic": {"lr": 0.05, "weight_decay": 0.0},
            # Rosenbrock's gradient is ~1e3 at the start: an unnormalized step h·g needs a small h
            "rosenbrock": {"lr": 1e-3, "weight_decay": 0.0, "gamma": 1e-5, "h": 1e-4},
        },
        complex=False,
    )

# ----------------------------------------------------------------------------- wrappers/fsam.py
add(
    "fsam",
    reference="tests.reference.fsam:fsam",
    test_hparams=dict(lr=0.01, weight_decay=0.01, mask_interval=3, rho=0.1),
    convergence_hparams={
        "quadratic": {"lr": 0.05, "rho": 1e-3, "sparsity": 0.5, "weight_decay": 0.0},
        "rosenbrock": {"lr": 0.02, "rho": 1e-4, "sparsity": 0.5, "weight_decay": 0.0, "steps": 5000},
    },
    complex=False,
)

# ----------------------------------------------------------------------------- wrappers/imbsam.py
add(
    "imbsam",
    reference="tests.reference.imbsam:imbsam",
    test_hparams=dict(lr=0.05, momentum=0.8, weight_decay=0.01),
    convergence_hparams={
        "quadratic": {"lr": 0.1, "rho": 1e-3, "weight_decay": 0.0},
        "rosenbrock": {"lr": 1e-3, "rho": 1e-4, "weight_decay": 0.0},
    },
    complex=False,
)

# ----------------------------------------------------------------------------- wrappers/orthograd.py
add(
    "orthograd",
    reference="tests.reference.orthograd:orthograd",
    test_hparams=dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    convergence_hparams={
        "quadratic": {"skip": "⊥Grad keeps ‖w‖ from shrinking; tests/test_orthograd.py checks its fixed points"},
        "rosenbrock": {"skip": "⊥Grad keeps ‖w‖ from shrinking; tests/test_orthograd.py checks its fixed points"},
    },
    complex=True,
)

# ----------------------------------------------------------------------------- wrappers/sam.py
for _name in ("sam", "asam", "usam", "sam_on"):
    add(
        _name,
        reference="tests.reference.sam:sam",
        test_hparams=dict(lr=0.05, momentum=0.8, weight_decay=0.01),
        # a fixed ρ biases SAM's fixed point by O(ρ): the convergence tests use a small one
        convergence_hparams={"quadratic": {"lr": 0.1, "rho": 1e-3}, "rosenbrock": {"lr": 1e-3, "rho": 1e-4}},
        complex=False,
    )

# ----------------------------------------------------------------------------- optim/dog.py
# parity runs start at r_ε = 1e-3 relative so that 20 steps move. Convergence: r_ε = 1e-2 relative, because a first
# move below bf16's resolution leaves a bf16 parameter (and so r̄) unchanged forever; DoG's step grows only as fast
# as the iterates move away from x₁, which along Rosenbrock's curved valley takes far more than the matrix's budget
for _name in ("dog", "ldog", "dowg"):
    add(
        _name,
        reference=f"tests.reference.dog:{_name}",
        test_hparams=dict(reps_rel=1e-3, weight_decay=0.05),
        convergence_hparams={
            "quadratic": {"reps_rel": 1e-2, "steps": 1000},
            "rosenbrock": {
                "skip": "DoG-type steps grow only as the iterates move: >20k steps on Rosenbrock (5k: x = −0.24)"
            },
        },
    )

# ----------------------------------------------------------------------------- optim/prodigy.py
add(
    "prodigy",
    reference="tests.reference.prodigy:prodigy",
    # d0 = 1e-3 so that the 20 parity steps move; bias correction and decay exercised
    test_hparams=dict(d0=1e-3, weight_decay=0.05, use_bias_correction=True, betas=(0.8, 0.95)),
    # d grows only once x moves away from x₀: in bf16 a first move d₀·lr below the resolution never happens
    convergence_hparams={"quadratic": {"d0": 1e-3, "steps": 1000}, "rosenbrock": {"d_coef": 0.1, "steps": 5000}},
)
add(
    "dadapt_adam",
    reference="tests.reference.prodigy:dadapt_adam",
    test_hparams=dict(d0=1e-3, weight_decay=0.05, use_bias_correction=True, betas=(0.8, 0.95)),
    convergence_hparams={"quadratic": {"steps": 1000}, "rosenbrock": {"steps": 5000}},
)

# ----------------------------------------------------------------------------- optim/schedule_free.py
add(
    "sf_sgd",
    reference="tests.reference.schedule_free:sf_sgd",
    test_hparams=dict(lr=0.1, momentum=0.8, weight_decay=0.05, warmup_steps=5, r=0.5),
    convergence_hparams={"quadratic": {"lr": 0.1}, "rosenbrock": {"lr": 2e-3, "steps": 20000}},  # y, in train mode
)
add(
    "sf_adamw",
    reference="tests.reference.schedule_free:sf_adamw",
    test_hparams=dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05, warmup_steps=5, r=0.5),
    convergence_hparams={"quadratic": {"lr": 0.05}, "rosenbrock": {"lr": 0.02, "steps": 10000}},
)

# ----------------------------------------------------------------------------- wrappers/schedule_free.py
add(
    "schedule_free",
    reference="tests.reference.schedule_free:schedule_free_wrapper",
    test_hparams=dict(lr=0.05, betas=(0.3, 0.95), eps=1e-6, weight_decay=0.02, weight_decay_at_y=0.05, r=0.5),
    convergence_hparams={"quadratic": {"lr": 0.05}, "rosenbrock": {"lr": 0.02, "steps": 10000}},
    dtypes=(torch.float32, torch.float64),
    complex=False,
)
