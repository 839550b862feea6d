"""One small exception family. The CLI turns any XEmotionError into a one-line message."""

from __future__ import annotations


class XEmotionError(Exception):
    """Base of every error xemotion raises on purpose."""

    exit_code: int = 1


class WeightsError(XEmotionError):
    """A weights file is missing, unreadable or does not fit the architecture."""


class ModelFileError(XEmotionError):
    """A model artifact (ONNX, TFLite) is missing, malformed or has the wrong contract."""


class UnsafeModelError(ModelFileError):
    """A model file crashed or hung the probe process (``xruntime_emotion.runtime.safety``); it was not loaded."""

    def __init__(self, message: str, signal: int | None = None) -> None:
        super().__init__(message)
        self.signal = signal  # the signal that ended the probe process, if one did


class ImageError(XEmotionError):
    """An input image or array cannot be turned into a face crop."""


class DataError(XEmotionError):
    """A dataset is missing or malformed."""


class ExportError(XEmotionError):
    """An export failed or its artifact failed validation; nothing was written."""


class MissingDependencyError(XEmotionError):
    """An optional dependency is not installed; the message carries the install hint."""

    exit_code = 3


class LeakageError(XEmotionError):
    """An artifact was calibrated on images of the split it is evaluated on."""


class IntegrityError(XEmotionError):
    """A file's sha256 does not match its manifest."""


class ConformanceError(XEmotionError):
    """An artifact disagrees with the golden vectors."""


def require(module: str, extra: str) -> object:
    """Import ``module`` or raise MissingDependencyError with the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install 'xemotion[{extra}]'"
        ) from exc
