"""Where a result comes from: code version, library versions, machine (every stored record carries this)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """``<sha>`` or ``<sha>+dirty`` of the checkout holding this package, or "unknown"."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", str(here.parent)],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:10]


def machine_id(threads: int, device: str = "cpu") -> str:
    """Identifies a timing context: step costs are only comparable within one machine id."""
    what = f"{cpu_model()}|{os.cpu_count()}|{threads}|{device}|{host_hash()}"
    if device.startswith("cuda") and torch.cuda.is_available():
        what += "|" + torch.cuda.get_device_name()
    return hashlib.sha256(what.encode()).hexdigest()[:10]


def environment(threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """The provenance block stored with every record."""
    threads = threads or torch.get_num_threads()
    try:
        from importlib.metadata import version

        optuna_version = version("optuna")
    except Exception:
        optuna_version = "unknown"
    return {
        "git": git_revision(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "optuna": optuna_version,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "device": device,
        "host": host_hash(),
        "machine": machine_id(threads, device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
