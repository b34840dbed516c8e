"""MeZO (zeroth-order SGD) fine-tuning inside ``transformers.Trainer``: a tiny GPT-2 built from its config (no
download) learns a synthetic next-token pattern from forward passes only.

Malladi et al. (2023), *Fine-Tuning Language Models with Just Forward Passes*, arXiv:2305.17333. The Trainer
subclass overrides only ``create_optimizer`` (an :class:`optimlab.zo.ZOSGD` with the Trainer's lr, weight decay
and param-group split) and ``training_step`` (the SPSA estimate, two forward passes under ``torch.no_grad()`` in
eval mode so that dropout does not change between them); the Trainer's own ``optimizer.step()`` then applies the
update from the recorded seeds, and its LR scheduler, logging and checkpointing work unchanged. No gradient is
ever allocated: memory is that of inference (see ``benchmarks/zo_memory.py`` for the measured comparison with
AdamW).

Run: ``python examples/mezo_trainer.py`` (about a minute on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from optimlab import zo

VOCAB, LENGTH = 64, 32


def pattern_dataset(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Sequences that count up by a per-sequence stride modulo the vocabulary: predictable after two tokens."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        start, stride = torch.randint(0, VOCAB, (2,), generator=g).tolist()
        ids = (start + (stride % 7 + 1) * torch.arange(LENGTH)) % VOCAB
        out.append({"input_ids": ids, "labels": ids.clone()})
    return out


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=LENGTH, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config)


class MeZOTrainer(Trainer):
    """``transformers.Trainer`` with MeZO: ZO-SGD from two forward passes per step (n = ``zo_n`` directions)."""

    def __init__(self, *args, zo_eps: float = 1e-3, zo_n: int = 1, zo_seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zo_eps, self.zo_n, self.zo_seed = zo_eps, zo_n, zo_seed

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            decay = set(self.get_decay_parameter_names(self.model))
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
            groups = [
                {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
                {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
            ]
            self.optimizer = zo.ZOSGD(
                [g for g in groups if g["params"]], lr=self.args.learning_rate, eps=self.zo_eps, n=self.zo_n,
                seed=self.zo_seed,
            )  # fmt: skip
        return self.optimizer

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        if self.args.gradient_accumulation_steps != 1:
            raise ValueError("MeZOTrainer: gradient_accumulation_steps must be 1 (use zo_n directions instead)")
        model.eval()  # the same function at θ + εz and θ − εz: no dropout
        inputs = self._prepare_inputs(inputs)
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps the optimizer
        loss = optimizer.estimate(lambda: self.compute_loss(model, inputs))
        return loss.detach().to(torch.float32)


@torch.no_grad()
def eval_loss(model: GPT2LMHeadModel, data: list[dict[str, torch.Tensor]]) -> float:
    model.eval()
    ids = torch.stack([d["input_ids"] for d in data])
    return float(model(input_ids=ids, labels=ids).loss)


def main(steps: int = 300, lr: float = 1e-3, n: int = 4, seed: int = 0) -> dict[str, float]:
    torch.set_num_threads(1)
    model = tiny_gpt2(seed)
    train, held_out = pattern_dataset(256, seed), pattern_dataset(64, seed + 1)
    before = eval_loss(model, held_out)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=16, learning_rate=lr,
            lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, logging_steps=max(steps // 5, 1),
            save_strategy="no", report_to=[], use_cpu=True, seed=seed, disable_tqdm=True,
        )  # fmt: skip
        trainer = MeZOTrainer(model=model, args=args, train_dataset=train, zo_n=n, zo_seed=seed)
        trainer.train()
        zo_steps = int(
            zo.ZOSGD.state_dict(getattr(trainer.optimizer, "optimizer", trainer.optimizer))["state"][0]["step"]
        )
    after = eval_loss(model, held_out)
    grads = sum(p.grad is not None for p in model.parameters())
    return {"loss_before": before, "loss_after": after, "zo_steps": zo_steps, "params_with_grad": grads}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n", type=int, default=4)
    a = parser.parse_args()
    print(main(a.steps, a.lr, a.n))
