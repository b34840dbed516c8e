"""SAF — Sharpness-Aware Training for Free (Du, Zhou, Feng, Tan & Zhou, 2022, NeurIPS 2022, arXiv:2205.14083,
seed #57), as the loss-side component it is.

SAF replaces SAM's sharpness term by a *trajectory loss*: the KL divergence between the network's outputs on
an example now and the outputs it had for the same example Ẽ epochs ago, which penalizes the sudden loss drops
that happen when training falls into a sharp minimum. It costs one extra softmax per example, not a second
gradient evaluation, so the step time is the base optimizer's:

    L = L_CE + λ · (τ²/|B|) Σ_{i∈B} KL( softmax(ŷ_i^(e−Ẽ)/τ) ‖ softmax(f_w(x_i)/τ) ),

active for start_epoch < e < end_epoch. Verified against the authors' training script
(github.com/AngusDujw/SAF, ``SAF_train.py``): the outputs of every example are recorded, detached, each time
it is seen, in a ring of Ẽ + 1 slots per example (slot e mod (Ẽ+1)); the KL uses the slot of epoch e − Ẽ,
``F.kl_div(log_softmax(out/τ), softmax(past/τ)).sum(-1).mean() · τ²`` times ``--reinforce``; defaults
λ = 0.16 (``--reinforce``), τ = 5, Ẽ = 3 (``--minus_epoch``), start epoch 5 (``--kl_start_epoch``). The paper's
formula omits the τ² of the code; λ here multiplies the code's τ²-scaled term.

This is therefore not an optimizer wrapper: :class:`TrajectoryLoss` is an ``nn.Module`` keyed by example
indices, its memory (N × (Ẽ+1) × C stored outputs) is a pair of buffers, and it checkpoints with
``state_dict()`` (plain tensors, loads with ``weights_only=True``). Use it with any plain optimizer::

    traj = TrajectoryLoss(num_examples=len(train_set), num_classes=10)   # the loader must yield indices
    opt = optimlab.create("sgd", model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(epochs):
        for idx, x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y) + traj(logits, idx, epoch)
            opt.zero_grad(); loss.backward(); opt.step()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "saf": traj.state_dict()}, path)

Only examples whose outputs were actually recorded at epoch e − Ẽ contribute (a slot remembers the epoch it
was written in); the sum is still divided by the batch size, so with every example seen once per epoch this is
exactly the authors' term. Under DDP each worker stores the examples it sees: use a sampler that gives each
worker the same examples every epoch, or examples that moved to another worker simply do not contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TrajectoryLoss(nn.Module):
    """SAF's trajectory loss λ·τ²·mean_i KL(softmax(past_i/τ) ‖ softmax(logits_i/τ)) over a batch, with the
    outputs of each example stored per epoch (see the module docstring).

    ``forward(logits, indices, epoch)``: ``logits`` of shape (B, C) (any float dtype; computed in fp32),
    ``indices`` the dataset indices of the batch's examples (B,), ``epoch`` the current epoch (0-based int).
    Records ``logits.detach()`` for these examples and returns the loss term (0 outside the active epochs).
    ``storage_dtype=torch.bfloat16`` halves the memory of the stored outputs.
    """

    def __init__(
        self,
        num_examples: int,
        num_classes: int,
        *,
        weight: float = 0.16,
        temperature: float = 5.0,
        delay: int = 3,
        start_epoch: int = 5,
        end_epoch: int | None = None,
        storage_dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        for name, value, ok in (
            ("num_examples", num_examples, isinstance(num_examples, int) and num_examples >= 1),
            ("num_classes", num_classes, isinstance(num_classes, int) and num_classes >= 1),
            ("weight", weight, float(weight) >= 0.0),
            ("temperature", temperature, float(temperature) > 0.0),
            ("delay", delay, isinstance(delay, int) and delay >= 1),
            ("start_epoch", start_epoch, isinstance(start_epoch, int)),
            ("end_epoch", end_epoch, end_epoch is None or isinstance(end_epoch, int)),
        ):
            if not ok or (isinstance(value, float) and value != value):
                raise ValueError(f"{name} is invalid: {value!r}")
        if not storage_dtype.is_floating_point:
            raise ValueError(f"storage_dtype must be a floating-point dtype, got {storage_dtype}")
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.delay = delay
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        slots = delay + 1
        self.register_buffer(
            "outputs", torch.zeros(num_examples, slots, num_classes, dtype=storage_dtype, device=device)
        )
        self.register_buffer("recorded_epoch", torch.full((num_examples, slots), -1, dtype=torch.int64, device=device))

    def active(self, epoch: int) -> bool:
        """Whether the trajectory term is on at ``epoch`` (start_epoch < epoch < end_epoch, as the authors)."""
        return epoch > self.start_epoch and (self.end_epoch is None or epoch < self.end_epoch)

    def forward(self, logits: Tensor, indices: Tensor, epoch: int) -> Tensor:
        if logits.ndim != 2 or logits.shape[1] != self.outputs.shape[2]:
            raise ValueError(f"logits must have shape (batch, {self.outputs.shape[2]}), got {tuple(logits.shape)}")
        idx = torch.as_tensor(indices, device=self.outputs.device).long().reshape(-1)
        if idx.numel() != logits.shape[0]:
            raise ValueError("indices must hold one dataset index per row of logits")
        slots = self.delay + 1
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.active(epoch):
            past_slot = (epoch - self.delay) % slots
            past = self.outputs[idx, past_slot].to(device=logits.device, dtype=torch.float32)
            valid = (self.recorded_epoch[idx, past_slot] == epoch - self.delay).to(logits.device)
            tau = self.temperature
            log_q = F.log_softmax(logits.float() / tau, dim=-1)
            p = F.softmax(past / tau, dim=-1)
            kl = (torch.xlogy(p, p) - p * log_q).sum(-1)  # KL(p ‖ q), 0·log 0 = 0
            loss = self.weight * tau * tau * (kl * valid).sum() / logits.shape[0]
        with torch.no_grad():
            slot = epoch % slots
            self.outputs[idx, slot] = logits.detach().to(self.outputs.device, self.outputs.dtype)
            self.recorded_epoch[idx, slot] = epoch
        return loss

    def extra_repr(self) -> str:
        n, slots, c = self.outputs.shape
        return (
            f"examples={n}, classes={c}, weight={self.weight}, temperature={self.temperature}, delay={self.delay}, "
            f"start_epoch={self.start_epoch}, end_epoch={self.end_epoch}, storage={self.outputs.dtype}"
        )
