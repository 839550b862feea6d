"""The common intermediate representation: DeepFace's emotion CNN described once.

Every artifact is built from a ``ModelIR``: an ordered tuple of layers with their
hyper-parameters, the weights as read-only NumPy arrays (Keras layout: conv HWIO,
dense IO), the input contract, the labels and where the weights came from.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.errors import WeightsError
from xruntime_emotion.model.architecture import (  # noqa: F401 - re-exported: the IR's vocabulary
    CONTRACT,
    DEEPFACE_LAYERS,
    LABELS,
    InputContract,
    Layer,
    LayerKind,
    weight_shapes,
)
from xruntime_emotion.util import open_regular, sha256_file

OWN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights came from: the source, its sha256 and its file format."""

    source: str
    sha256: str
    format: str


def _check_npz_shapes(path: Path, shapes: Mapping[str, tuple[tuple[int, ...], ...]]) -> None:
    """Every weight array's declared shape (its .npy header) against the architecture, nothing else read."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        for name, (kernel, bias) in shapes.items():
            for suffix, want in (("kernel", kernel), ("bias", bias)):
                member = f"{name}/{suffix}.npy"
                try:
                    with zf.open(member) as f:
                        major, _ = np.lib.format.read_magic(f)
                        read_header = (
                            np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                        )
                        shape, _, _ = read_header(f)  # the header only
                except KeyError:
                    raise WeightsError(f"{path}: no {member}") from None
                if tuple(shape) != want:
                    raise WeightsError(f"{path}: {member} has shape {tuple(shape)}, the architecture needs {want}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float32).copy()
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class ModelIR:
    """The network, its weights, contract, labels and provenance. Immutable."""

    weights: Mapping[str, tuple[np.ndarray, np.ndarray]]
    provenance: Provenance
    layers: tuple[Layer, ...] = DEEPFACE_LAYERS
    labels: tuple[str, ...] = LABELS
    contract: InputContract = field(default_factory=InputContract)

    def __post_init__(self) -> None:
        expected = weight_shapes(self.layers, self.contract)
        if set(self.weights) != set(expected):
            raise WeightsError(
                f"weights are for layers {sorted(self.weights)}, the architecture has {sorted(expected)}"
            )
        frozen = {}
        for name, shapes in expected.items():
            arrays = self.weights[name]
            got = tuple(tuple(a.shape) for a in arrays)
            if got != shapes:
                raise WeightsError(f"layer {name}: weight shapes {got} do not fit the architecture {shapes}")
            if not all(np.isfinite(a).all() for a in arrays):
                raise WeightsError(f"layer {name}: weights contain NaN or inf")
            frozen[name] = (_frozen(arrays[0]), _frozen(arrays[1]))
        object.__setattr__(self, "weights", frozen)

    # -- identity ---------------------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "labels": list(self.labels),
            "input": {**asdict(self.contract), "value_range": list(self.contract.value_range)},
            "output": {"name": "probabilities", "activation": "softmax", "shape": [len(self.labels)]},
        }

    @property
    def ir_hash(self) -> str:
        """sha256 of the architecture description (not the weights)."""
        text = json.dumps(self.architecture(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def weights_sha256(self) -> str:
        """sha256 of the weight values in layer order: the same for every file format."""
        h = hashlib.sha256()
        for layer in self.weighted_layers:
            for a in self.weights[layer.name]:
                h.update(a.astype("<f4").tobytes())
        return h.hexdigest()

    @property
    def weighted_layers(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.has_weights)

    @property
    def num_parameters(self) -> int:
        return int(sum(a.size for pair in self.weights.values() for a in pair))

    # -- constructors -----------------------------------------------------------------------
    @staticmethod
    def from_arrays(
        arrays: list[tuple[np.ndarray, np.ndarray]], provenance: Provenance, layers: tuple[Layer, ...] = DEEPFACE_LAYERS
    ) -> ModelIR:
        """Weights given in layer order (kernel, bias) for each weighted layer."""
        weighted = [layer for layer in layers if layer.has_weights]
        if len(arrays) != len(weighted):
            raise WeightsError(f"expected weights for {len(weighted)} layers, got {len(arrays)}")
        return ModelIR(
            weights={layer.name: pair for layer, pair in zip(weighted, arrays)}, provenance=provenance, layers=layers
        )

    @staticmethod
    def from_keras(model: Any, source: str = "keras-model") -> ModelIR:
        """From a Keras model built the DeepFace way (duck-typed: no TensorFlow import here)."""
        arrays = [tuple(layer.get_weights()) for layer in model.layers if layer.get_weights()]
        ir = ModelIR.from_arrays(arrays, Provenance(source, "", "keras"))  # type: ignore[arg-type]
        return ir.with_provenance(Provenance(source, ir.weights_sha256, "keras"))

    @staticmethod
    def from_deepface_h5(path: str | Path) -> ModelIR:
        from xruntime_emotion.model.h5io import read_deepface_h5

        shapes = list(weight_shapes(DEEPFACE_LAYERS, CONTRACT).values())
        return ModelIR.from_arrays(
            read_deepface_h5(path, shapes), Provenance(str(Path(path).name), sha256_file(path), "deepface-h5")
        )

    @staticmethod
    def from_npz(path: str | Path) -> ModelIR:
        """The project's own format: an npz of float32 arrays plus the architecture as JSON."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__architecture__"]))
                layers = tuple(Layer.from_dict(d) for d in meta["layers"])
                _check_npz_shapes(path, weight_shapes(layers, CONTRACT))  # before a weight is read
                weights = {
                    layer.name: (z[f"{layer.name}/kernel"], z[f"{layer.name}/bias"])
                    for layer in layers
                    if layer.has_weights
                }
            if any(a.dtype.kind != "f" for pair in weights.values() for a in pair):
                raise ValueError("weights must be floating point")
        except WeightsError:
            raise
        except Exception as exc:  # a damaged zip raises BadZipFile, zlib.error, NotImplementedError, ...
            raise WeightsError(f"{path}: not a readable xemotion weights file ({type(exc).__name__}: {exc})") from exc
        if tuple(meta.get("labels", LABELS)) != LABELS:
            raise WeightsError(f"{path}: labels {meta.get('labels')} differ from {list(LABELS)}")
        return ModelIR(
            weights=weights, provenance=Provenance(path.name, sha256_file(path), "xemotion-npz"), layers=layers
        )

    @staticmethod
    def load(path: str | Path) -> ModelIR:
        """Any weights file, by content: DeepFace's legacy h5 or xemotion's npz."""
        path = Path(path)
        if not path.exists():
            raise WeightsError(f"{path}: no such weights file")
        with open_regular(path, error=WeightsError, what="weights file") as f:  # a FIFO or device: refused
            magic = f.read(8)
        if magic.startswith(b"\x89HDF"):
            return ModelIR.from_deepface_h5(path)
        if magic.startswith(b"PK"):
            return ModelIR.from_npz(path)
        raise WeightsError(f"{path}: not a weights file (expected DeepFace's .h5 or xemotion's .npz)")

    @staticmethod
    def default() -> ModelIR:
        """The weights shipped inside the package (trained by xemotion on FER2013)."""
        from xruntime_emotion.weights import default_weights_path

        return ModelIR.from_npz(default_weights_path())

    def with_provenance(self, provenance: Provenance) -> ModelIR:
        return ModelIR(
            weights=self.weights, provenance=provenance, layers=self.layers, labels=self.labels, contract=self.contract
        )

    # -- writers ----------------------------------------------------------------------------
    def save_npz(self, path: str | Path) -> Path:
        from xruntime_emotion.atomic import write_npz

        meta = json.dumps(self.architecture(), sort_keys=True)
        arrays: dict[str, Any] = {"__architecture__": np.array(meta)}
        for layer in self.weighted_layers:
            k, b = self.weights[layer.name]
            arrays[f"{layer.name}/kernel"] = k
            arrays[f"{layer.name}/bias"] = b
        return write_npz(path, arrays)

    def save_deepface_h5(self, path: str | Path) -> Path:
        from xruntime_emotion.model.h5io import write_deepface_h5

        return write_deepface_h5(self, path)

    # -- oracle -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, *, logits: bool = False) -> np.ndarray:
        from xruntime_emotion.model.reference import forward

        return forward(self, x, logits=logits)
