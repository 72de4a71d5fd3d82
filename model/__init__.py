"""The executable kernel and hardware model. Imports nothing from invariants/ or checkers/."""

from __future__ import annotations

import importlib
from typing import Any

# Built-in models by registry name: "module:Class", imported on first use.
MODELS = {
    "buddy": "model.mm.buddy:BuddyModel",
    "slub": "model.mm.slab:SlubModel",
    "sched": "model.sched.model:SchedModel",
    "sync": "model.sync.model:SyncModel",
    "tcp": "model.tcp.model:TcpModel",
    "cgroup": "model.cgroup.model:CgroupModel",
    "kernel": "model.kernel:KernelModel",
}


def model_class(name: str) -> Any:
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)
