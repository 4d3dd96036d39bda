"""Access to the enhancement-model package.

The repository keeps model definitions in the top-level folder ``models/``; pyproject installs that
folder as the package ``workbench_models`` (never as a bare ``models``). When the code runs from a
checkout that was not installed, this module maps the folder to the same name so imports are
identical in both cases: ``from workbench.model_package import workbench_models``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

PACKAGE = "workbench_models"


def _load():
    try:
        return importlib.import_module(PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name != PACKAGE:
            raise
    folder = Path(__file__).resolve().parent.parent / "models"
    spec = importlib.util.spec_from_file_location(PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot find the model package {PACKAGE} or the folder {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


workbench_models = _load()
