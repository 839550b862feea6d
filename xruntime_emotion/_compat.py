"""The module paths of the flat layout (before the layers), kept for one release: ``import xruntime_emotion.ir``
still works, warns once, and gives a thin module that forwards every name to its new home."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

MOVED: dict[str, str] = {
    "ir": "model.ir",
    "h5io": "model.h5io",
    "reference": "model.reference",
    "metadata": "model.metadata",
    "synthetic": "model.synthetic",
    "formats": "model.catalog",
    "data": "model.data",
    "runtimes": "runtime.backends",
    "runtimes.ort": "runtime.backends.ort",
    "runtimes.litert": "runtime.backends.litert",
    "runtimes.reference": "runtime.backends.reference",
    "classifier": "runtime.classifier",
    "preprocess": "runtime.preprocess",
    "safety": "runtime.safety",
    "detect": "runtime.detect",
    "integrity": "runtime.integrity",
    "info": "runtime.info",
    "golden": "check.golden",
    "conformance": "check.verify",
    "evaluate": "check.evaluate",
    "bench": "check.bench",
}
_PACKAGE = __name__.rpartition(".")[0]


class _OldPaths:  # a meta path finder and loader by its methods: importlib.abc would cost every start ~5 ms
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix(_PACKAGE + ".")
        if old == fullname or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=old == "runtimes")

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new_name = f"{_PACKAGE}.{MOVED[spec.name.removeprefix(_PACKAGE + '.')]}"
        warnings.warn(f"{spec.name} is now {new_name}; the old path goes in the next release", DeprecationWarning, 2)
        new = importlib.import_module(new_name)
        alias = types.ModuleType(spec.name, new.__doc__)

        def forward(name: str) -> Any:
            if name.startswith("__"):  # never the new module's __path__, __spec__...: submodules alias too
                raise AttributeError(name)
            return getattr(new, name)

        alias.__getattr__ = forward  # type: ignore[method-assign]
        alias.__dir__ = lambda: dir(new)  # type: ignore[method-assign]
        return alias

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the alias forwards to the module that was imported when it was made."""


def install() -> None:
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.append(_OldPaths())
