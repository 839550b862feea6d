"""xemotion: DeepFace's facial-emotion CNN, exported and verified across runtimes.

``from xruntime_emotion import EmotionClassifier`` is the embedding API; it imports no TensorFlow.

Layers, each importing only those below it: the base (``errors``, ``atomic``, ``util``), ``model`` (the
IR, weights I/O, the artifact catalog, FER2013), ``runtime`` (classifier, backends, safety), ``check``
(golden set, verify, evaluate, bench) and ``batch`` (classify many faces), and the ``cli`` on top.
``exporters`` (beside this package) holds everything that needs TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xruntime_emotion import _compat
from xruntime_emotion._version import __version__
from xruntime_emotion.errors import XEmotionError
from xruntime_emotion.model.labels import LABELS
from xruntime_emotion.runtime.classifier import EmotionClassifier

if TYPE_CHECKING:
    from xruntime_emotion.batch import classify_table
    from xruntime_emotion.model.ir import ModelIR
    from xruntime_emotion.runtime.prediction import Prediction

_compat.install()  # the flat layout's module paths, for one release


# Exported on first use: the batch engine (and pyarrow, Ray, Rich) stays out of an app's start, and so do
# the IR (its classes, weights I/O, json), which classifying does not need, and ``Prediction``, which only
# ``classify`` makes.
_LAZY = {
    "classify_table": "xruntime_emotion.batch",
    "ModelIR": "xruntime_emotion.model.ir",
    "Prediction": "xruntime_emotion.runtime.prediction",
}


def __getattr__(name: str) -> Any:
    """A name of ``_LAZY``, imported from its module on first use."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EmotionClassifier", "LABELS", "ModelIR", "Prediction", "XEmotionError", "__version__", "classify_table"]
