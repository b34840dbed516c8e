"""A per-user cache of workload data hashes, so that planning a sweep (``bench run --dry-run`` included) does not
regenerate every data set just to fingerprint it. Keyed by workload id, workload code hash, smoke flag and the
numpy and torch versions (the generators' outputs depend on them); ``$XDG_CACHE_HOME/optimlab/data-hashes.json``.
A dry run reads the cache and writes nothing (:data:`WRITE`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: whether a computed hash is written back (the CLI's dry run turns this off)
WRITE = True


def _path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optimlab" / "data-hashes.json"


def data_hash(workload: Any, smoke: bool) -> str:
    """``workload.data_hash(smoke)``, from the cache when the key matches."""
    import numpy as np
    import torch

    key = f"{workload.id}|{workload.code_hash()}|{int(smoke)}|{np.__version__}|{torch.__version__}"
    path = _path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    value = workload.data_hash(smoke)
    if WRITE:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**cache, key: value}, indent=0, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass
    return value
