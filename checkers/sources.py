"""Which files make up a model: what ``kinv check --coverage`` reports on and what
``kinv mutants --generate`` mutates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from checkers.errors import UsageError


def project_root() -> Path:
    """The directory holding the ``model`` package that is imported: a clone, or site-packages."""
    import model

    return Path(model.__file__).resolve().parent.parent


_SOURCES_SCRIPT = """
import json, sys
import model
model.model_class(sys.argv[1])
print(json.dumps(sorted(
    getattr(m, "__file__", None) or "" for name, m in list(sys.modules.items()) if name.startswith("model.")
)))
"""


def model_sources(model: str) -> list[Path]:
    """The files under model/ that the built-in model ``model`` runs: its class's module and every
    ``model.`` module imported with it, without the framework (model/contract.py, __init__.py).

    The modules are those a fresh interpreter holds after importing the model class: the code
    that runs. A static walk of the imports (modulefinder) would also follow ``if TYPE_CHECKING:``
    imports, which run nothing (vmscan's of KernelState would make model/kernel.py part of any
    model that reclaims), and would miss imports made through importlib. A fresh interpreter,
    since this one may have imported other models already (``kinv`` imports every invariant).
    """
    import model as models

    if model not in models.MODELS:
        raise UsageError(f"no built-in model {model!r} (known: {', '.join(models.MODELS)})")
    root = project_root()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", _SOURCES_SCRIPT, model], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    package = root / "model"
    files = []
    for name in json.loads(done.stdout):
        path = Path(name).resolve() if name else None
        if path is None or not path.is_relative_to(package) or path.name == "__init__.py":
            continue
        if path == package / "contract.py":
            continue
        files.append(path)
    return sorted(set(files))
