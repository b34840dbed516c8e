"""Test configuration. The oneDNN ISA cap must be set before torch is imported: torch 2.13's oneDNN crashes
(SIGILL) on bf16 matrix multiplies beyond tiny sizes on some CPUs; AVX512_CORE_BF16 avoids it."""

import os

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
