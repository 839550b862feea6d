"""xemotion: DeepFace's facial-emotion CNN, exported and verified across runtimes.

``from xruntime_emotion import EmotionClassifier`` is the embedding API; it imports no TensorFlow.
"""

from ._version import __version__
from .classifier import EmotionClassifier, Prediction
from .errors import XEmotionError
from .ir import LABELS, ModelIR

__all__ = ["EmotionClassifier", "LABELS", "ModelIR", "Prediction", "XEmotionError", "__version__"]
