"""What a classification returns, and what anything that classifies faces offers (face detection
depends on this, not on the classifier itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Prediction:
    """The most likely label of one face, its probability, and every label's probability."""

    label: str
    probability: float
    probabilities: dict[str, float]


class Classifies(Protocol):
    def classify_many(self, faces: Any) -> list[Prediction]:
        """One prediction per face."""
        ...
