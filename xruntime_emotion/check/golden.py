"""The golden set: inputs, expected outputs and tolerances that `verify` checks every artifact against.

Layout of ``golden/`` (repo root; the wheel carries it whole as ``xruntime_emotion/golden_set``):
- ``manifest.json``: schema, weights sha256, IR hash, generator versions, tolerances with reasons and
  sources, and every case (name, kind, sha256 of its uint8 pixels, FER2013 row where it has one);
- ``faces.npz``: the real faces' uint8 pixels (NXP's test.jpg and every 7th FER2013 PrivateTest row),
  so that `verify` needs no data set; research use only, as FER2013 itself;
- ``expected.npz``: fp32 expectations (NumPy IR reference, cross-checked with Keras) for all cases,
  and each int8 artifact's own outputs, recorded when the set is made on every kernel set in
  the catalog's ``recorded_on`` (key ``int8:FORMAT@RUNTIME``): the same int8 file rounds differently under XNNPACK
  and under TFLite's builtin kernels, and a correct runtime matches one of them;
- ``onnx/test_data_set_0/{input_0,output_0}.pb``: the generated cases in ONNX's backend-test layout;
- ``detector/photo_N.png``: fixed photos for the face detectors, whose recorded boxes are the manifest's
  ``detectors`` section (``xruntime_emotion.check.detector_golden``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion import util
from xruntime_emotion._version import __version__
from xruntime_emotion.check import detector_golden
from xruntime_emotion.check.fidelity import Int8Rule
from xruntime_emotion.errors import ConformanceError, DataError
from xruntime_emotion.model.catalog import FORMATS
from xruntime_emotion.model.data import FerData, Split, data_root, image_sha256
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.model.synthetic import synthetic_cases
from xruntime_emotion.runtime.inspection import inspect_file, output_step

SCHEMA = 3
MAX_FILE_BYTES = 64 * 2**20  # each file of a golden set (about 1 MB today); a larger one is refused unread
MAX_ARRAY_BYTES = 256 * 2**20  # what one npz's members may declare, uncompressed, in all
SEAL_COVERS = "the manifest (without this entry), expected.npz and faces.npz; see golden.seal"
SYNTHETIC_SEED = 0
FER_STRIDE = 7  # every 7th PrivateTest row: 513 faces, fixed by index
HAPPY = "nxp_test_jpg"
HAPPY_ROW = 32414  # NXP's test.jpg is this PrivateTest row, pixel for pixel

TOLERANCES: dict[str, dict[str, Any]] = {
    "fp32": {
        "max_abs": 1e-5,
        "reason": "float32 kernels differ from the float64 reference only by rounding (~1e-7 seen)",
    },
    "int8_vs_fp32": {
        **Int8Rule().to_json(),
        "reason": "8-bit quantization moves probabilities; on real faces it must keep every clear decision "
        "and stay close (the int8 rule, README)",
    },
    "int8_vs_self": {
        "max_steps": 2,
        "reason": "the same int8 file on the same kernel set rounds alike; each kernel set has its own recording",
    },
    "cross_producer": {
        "max_abs": 1e-6,
        "reason": "tf2onnx and the IR emitter describe the same float32 graph",
    },
}


PACKAGED = "golden_set"  # where the wheel carries golden/ (setup.py copies it at build time)
FACES = "faces.npz"


def golden_dir() -> Path:
    """The installed golden set; in a source checkout, its golden/; $XEMOTION_GOLDEN overrides both."""
    env = os.environ.get("XEMOTION_GOLDEN")
    if env:
        return Path(env)
    packaged = importlib.resources.files("xruntime_emotion").joinpath(PACKAGED)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "golden"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # synthetic | nxp | fer2013
    sha256: str
    row: int | None = None


@dataclass
class GoldenSet:
    manifest: dict[str, Any]
    expected: dict[str, np.ndarray]
    faces: dict[str, np.ndarray]  # real faces' uint8 pixels by case name

    @property
    def cases(self) -> list[Case]:
        return [Case(**c) for c in self.manifest["cases"]]

    def images(self) -> tuple[list[Case], np.ndarray]:
        """Every case and its uint8 image, each checked against its sha256."""
        synth = dict(synthetic_cases(SYNTHETIC_SEED))
        cases, imgs = self.cases, []
        for c in cases:
            img = synth.get(c.name) if c.kind == "synthetic" else self.faces.get(c.name)
            if img is None:
                raise ConformanceError(f"golden case {c.name}: its pixels are missing from the golden set")
            if image_sha256(img) != c.sha256:
                raise ConformanceError(f"golden case {c.name}: pixels do not match their sha256 (corrupt golden set?)")
            imgs.append(img)
        return cases, np.stack(imgs)

    def rows(self, key: str, cases: list[Case]) -> np.ndarray:
        index = {c.name: i for i, c in enumerate(self.cases)}
        return self.expected[key][[index[c.name] for c in cases]]


def read_json(path: Path) -> Any:
    """A JSON file of a golden set, through the door (``util.read_json``): a regular file, not a link, capped."""
    return util.read_json(path, MAX_FILE_BYTES, follow_symlinks=False, error=ConformanceError, what="golden file")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """An npz of a golden set, through the door (``util.read_npz``): headers judged before arrays are made."""
    return util.read_npz(
        path, MAX_FILE_BYTES, MAX_ARRAY_BYTES, follow_symlinks=False, error=ConformanceError, what="golden file"
    )


def read_bytes(path: Path) -> bytes:
    """Any other file of a golden set (a detector photo), through the door."""
    return util.read_bounded(path, MAX_FILE_BYTES, follow_symlinks=False, error=ConformanceError, what="golden file")


def load(directory: Path | None = None) -> GoldenSet:
    """The golden set in ``directory`` (default ``golden_dir()``), checked against its seal.

    Each file is read through one door before anything is trusted: regular files only (a FIFO, device or
    symbolic link is refused unopened), at most ``MAX_FILE_BYTES`` each, npz members judged by their headers
    (at most ``MAX_ARRAY_BYTES`` in all) before an array is made; every failure is one ConformanceError.
    """
    d = directory or golden_dir()
    hint = "pass --golden DIR" if directory else "reinstall xemotion, or pass --golden DIR"
    try:
        manifest = read_json(d / "manifest.json")
        expected = read_npz(d / "expected.npz")
        stored = read_npz(d / FACES)
        faces = dict(zip(stored["names"].tolist(), stored["images"]))
    except ConformanceError as exc:
        raise ConformanceError(f"no readable golden set in {d} ({exc}); {hint}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConformanceError(f"no readable golden set in {d} ({FACES}: {exc!r}); {hint}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise ConformanceError(f"{d}: golden schema is not {SCHEMA}; use the golden set of this xemotion version")
    _check_types(d, manifest)
    recorded = (manifest.get("seal") or {}).get("sha256") if isinstance(manifest.get("seal"), dict) else None
    if recorded != seal(manifest, expected, faces):
        raise ConformanceError(
            f"{d}: the golden set does not match its seal (a corrupt or edited file); reinstall xemotion, or "
            "rebuild it with `xemotion golden regenerate`"
        )
    return GoldenSet(manifest, expected, faces)


def _check_types(d: Path, manifest: dict[str, Any]) -> None:
    """The fields `verify` computes with, of the types it needs: one clear error, never a TypeError later."""
    try:
        tol = manifest["tolerances"]
        for key, field in (("fp32", "max_abs"), ("int8_vs_self", "max_steps"), ("cross_producer", "max_abs")):
            if not isinstance(tol[key][field], (int, float)) or isinstance(tol[key][field], bool):
                raise TypeError(f"tolerances.{key}.{field} is not a number")
        Int8Rule.from_json(tol["int8_vs_fp32"])
        [Case(**c) for c in manifest["cases"]]
        for fmt, entry in manifest["int8"].items():
            float(entry["step"])
            if not isinstance(entry["recorded"], dict):
                raise TypeError(f"int8.{fmt}.recorded is not an object")
        if "detectors" in manifest:
            detector_golden.check(manifest["detectors"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConformanceError(f"{d}: malformed golden manifest ({type(exc).__name__}: {exc})") from None


def seal(manifest: dict[str, Any], expected: dict[str, np.ndarray], faces: dict[str, np.ndarray]) -> str:
    """sha256 over the manifest (tolerances, cases, recordings; not the seal itself), every expected output
    and every face: what `load` checks before the set is used.

    It catches corruption and accidental edits, e.g. a tolerance relaxed by hand or a NaN in the expected
    outputs; it is no signature: whoever edits the files and recomputes this digest gets a valid seal.
    """
    h = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "seal"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for group in (expected, faces):
        for key in sorted(group):
            a = np.ascontiguousarray(group[key])
            h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def save(d: Path, manifest: dict[str, Any], expected: dict[str, np.ndarray], faces: dict[str, np.ndarray]) -> None:
    """Write (and seal) a golden set: faces and expected outputs first, the manifest that seals them last."""
    from xruntime_emotion.atomic import write_npz, write_text_atomic

    manifest = {**manifest, "seal": {"sha256": seal(manifest, expected, faces), "covers": SEAL_COVERS}}
    d.mkdir(parents=True, exist_ok=True)
    write_npz(d / FACES, {"names": np.array(list(faces)), "images": np.stack(list(faces.values()))})
    write_npz(d / "expected.npz", expected)
    write_text_atomic(d / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def real_faces(cases: list[Case]) -> np.ndarray:
    """Boolean mask of the cases that are real faces (NXP's test.jpg, FER2013 rows), not generated."""
    return np.array([c.kind != "synthetic" for c in cases], dtype=bool)


def make_cases(data: FerData) -> tuple[list[Case], np.ndarray]:
    cases, imgs = [], []
    for name, img in synthetic_cases(SYNTHETIC_SEED):
        cases.append(Case(name, "synthetic", image_sha256(img)))
        imgs.append(img)
    happy = data.images[HAPPY_ROW]
    try:
        nxp: Path | None = data_root() / "nxp-deepface-emotion" / "test.jpg"
    except DataError:
        nxp = None
    if nxp is not None and nxp.is_file():
        from xruntime_emotion.runtime.preprocess import load_image

        if image_sha256(load_image(nxp)) != image_sha256(happy):
            raise DataError(f"{nxp} is not FER2013 row {HAPPY_ROW}")
    cases.append(Case(HAPPY, "nxp", image_sha256(happy), HAPPY_ROW))
    imgs.append(happy)
    for row in data.indices(Split.PRIVATE_TEST)[::FER_STRIDE]:
        cases.append(Case(f"fer2013_{row}", "fer2013", image_sha256(data.images[row]), int(row)))
        imgs.append(data.images[row])
    return cases, np.stack(imgs)


def recorded_kinds() -> dict[str, tuple[str, ...]]:
    """int8 kind -> the runtimes whose outputs are recorded (one per kernel set), from the catalog."""
    return {f.name: f.recorded_on for f in FORMATS.values() if f.recorded_on}


def int8_key(fmt: str, runtime: str) -> str:
    return f"int8:{fmt}@{runtime}"


def recordings(gs: GoldenSet, fmt: str) -> dict[str, np.ndarray]:
    """The recorded int8 outputs of ``fmt``, by the runtime that made them."""
    return {rt: gs.expected[int8_key(fmt, rt)] for rt in gs.manifest["int8"].get(fmt, {}).get("recorded", {})}


def _versions() -> dict[str, str]:
    dists = ("numpy", "onnxruntime", "ai-edge-litert", "tensorflow-cpu", "tensorflow", "keras", "onnx")
    return {"xemotion": __version__, **util.versions(*dists)}


def _onnx_tensor_file(path: Path, array: np.ndarray, name: str) -> None:
    from onnx import numpy_helper

    from xruntime_emotion.atomic import write_bytes_atomic

    write_bytes_atomic(path, numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())


def write_mirror(directory: Path, x: np.ndarray, y: np.ndarray, set_index: int = 0, model: Path | None = None) -> Path:
    """ONNX backend-test layout: [model.onnx,] test_data_set_N/{input_0,output_0}.pb."""
    d = directory / f"test_data_set_{set_index}"
    d.mkdir(parents=True, exist_ok=True)
    _onnx_tensor_file(d / "input_0.pb", x.astype(np.float32), "input")
    _onnx_tensor_file(d / "output_0.pb", y.astype(np.float32), "probabilities")
    if model is not None:
        from xruntime_emotion.atomic import write_bytes_atomic

        write_bytes_atomic(directory / "model.onnx", model.read_bytes())
    return d


def mirror(output: Path, model: Path, directory: Path | None = None) -> dict[str, Any]:
    """`golden mirror`: ``model`` and the golden set in ONNX's backend-test layout, for onnx_test_runner.

    test_data_set_0 holds the generated cases, test_data_set_1 the real faces.
    """
    from xruntime_emotion.model.data import to_input

    gs = load(directory)
    cases, imgs = gs.images()
    x, y = to_input(imgs), gs.rows("fp32", cases)
    real = real_faces(cases)
    write_mirror(output, x[~real], y[~real], 0, model)
    write_mirror(output, x[real], y[real], 1)
    return {"output": str(output), "model": str(model), "generated_cases": int((~real).sum()),
            "real_faces": int(real.sum())}  # fmt: skip


def regenerate(
    ir: ModelIR,
    artifacts: Path,
    data: FerData,
    *,
    directory: Path | None = None,
    force: bool = False,
    on_step: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Rewrite the golden set deterministically; refuse other weights unless ``force``. ``on_step(what,
    done, total)`` hears of each recording as it starts."""
    from xruntime_emotion.model.data import to_input
    from xruntime_emotion.runtime.backends import RUNTIMES

    d = directory or golden_dir()
    old: GoldenSet | None = None
    if (d / "manifest.json").is_file():
        try:
            old = load(d)
        except ConformanceError:
            old = None
    if old and old.manifest["weights_sha256"] != ir.weights_sha256 and not force:
        raise ConformanceError(
            f"the golden set is for weights {old.manifest['weights_sha256'][:12]}…, these are "
            f"{ir.weights_sha256[:12]}…; pass --force to replace it"
        )
    cases, imgs = make_cases(data)
    x = to_input(imgs)
    expected: dict[str, np.ndarray] = {"fp32": ir.forward(x)}
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "weights_sha256": ir.weights_sha256,
        "ir_hash": ir.ir_hash,
        "generator": _versions(),
        "synthetic_seed": SYNTHETIC_SEED,
        "fer2013": {"split": "PrivateTest", "every": FER_STRIDE, "arrays_sha256": data.sha256,
                    "use": "checks only; never used to choose weights"},
        "tolerances": TOLERANCES,
        "cases": [asdict_case(c) for c in cases],
        "int8": {},
    }  # fmt: skip
    if RUNTIMES["keras"].available():  # through the one door, from the IR's own weights
        import tempfile

        from xruntime_emotion.runtime.backends import open_backend

        with tempfile.TemporaryDirectory(prefix="xemotion-golden-") as tmp:
            keras = open_backend(ir.save_npz(Path(tmp) / "weights.npz"), "keras")
            diff = float(np.abs(keras.predict(x) - expected["fp32"]).max())
        if diff > TOLERANCES["fp32"]["max_abs"]:
            raise ConformanceError(f"Keras disagrees with the IR reference by {diff:.3g}")
        manifest["keras_crosscheck_max_abs_diff"] = f"{diff:.1e}"
    real = real_faces(cases)
    todo = [(fmt, rt) for fmt, runtimes in recorded_kinds().items() for rt in runtimes]
    for fmt, runtimes in recorded_kinds().items():
        path = artifacts / FORMATS[fmt].filename
        if not path.is_file():
            raise ConformanceError(f"{path} is missing: run `xemotion export --all -o {artifacts}` first")
        step = output_step(inspect_file(path))
        entry: dict[str, Any] = {"artifact": path.name, "artifact_sha256": _sha(path), "step": step, "recorded": {}}
        for rt in runtimes:
            if on_step:
                on_step(f"{fmt} × {rt}", todo.index((fmt, rt)), len(todo))
            expected[int8_key(fmt, rt)] = _record_outputs(path, rt, None, x)
            entry["recorded"][rt] = {"argmax_agreement_with_fp32_on_real_faces": _agree(expected, fmt, rt, real)}
        first, *others = runtimes
        for rt in others:  # how far apart two correct kernel sets are: evidence for the tolerances
            a, b = expected[int8_key(fmt, first)], expected[int8_key(fmt, rt)]
            entry["recorded"][rt][f"vs_{first}"] = {
                "max_steps": float(np.round(np.abs(a - b).max() / step, 3)),
                "argmax_agreement_on_real_faces": float((a[real].argmax(1) == b[real].argmax(1)).mean()),
            }
        manifest["int8"][fmt] = entry
    if on_step:
        on_step("face detectors", len(todo), len(todo) + 1)
    manifest["detectors"] = detector_golden.record(d)
    faces = {c.name: img for c, img, r in zip(cases, imgs, real) if r}
    save(d, manifest, expected, faces)
    write_mirror(d / "onnx", x[~real], expected["fp32"][~real])
    return _summary(old, GoldenSet(manifest, expected, faces))


def _record_outputs(path: Path, runtime: str, delegate: str | None, x: np.ndarray) -> np.ndarray:
    from xruntime_emotion.runtime.backends import open_backend, predict_batched

    backend = open_backend(path, runtime, delegate=delegate)
    return predict_batched(backend, x)


def record(
    artifacts: Path,
    fmt: str,
    runtime: str,
    *,
    delegate: str | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Add one more kernel set's int8 outputs (a board's delegate, say) to an existing golden set.

    Only for the very artifact the set was made with, and with every case at hand: a recording is
    a drift baseline for that runtime, while the fp32 tolerance still judges it.
    """
    from xruntime_emotion.model.data import to_input

    d = directory or golden_dir()
    gs = load(d)
    entry = gs.manifest["int8"].get(fmt)
    if entry is None:
        raise ConformanceError(f"{fmt} has no int8 recordings to add to; choose from {', '.join(gs.manifest['int8'])}")
    path = artifacts / FORMATS[fmt].filename
    if not path.is_file():
        raise ConformanceError(f"{path} is missing")
    if _sha(path) != entry["artifact_sha256"]:
        raise ConformanceError(
            f"{path} is not the {fmt} file this golden set was made with (sha256 {entry['artifact_sha256'][:12]}…)"
        )
    cases, imgs = gs.images()
    name = runtime + (f"+{Path(delegate).name}" if delegate else "")
    expected = dict(gs.expected)
    expected[int8_key(fmt, name)] = _record_outputs(path, runtime, delegate, to_input(imgs))
    real = real_faces(cases)
    manifest = copy.deepcopy(gs.manifest)
    manifest["int8"][fmt]["recorded"][name] = {
        "argmax_agreement_with_fp32_on_real_faces": _agree(expected, fmt, name, real),
        "delegate": delegate,
        "added_by": "xemotion golden record",
    }
    save(d, manifest, expected, gs.faces)
    return {"format": fmt, "recording": name, **manifest["int8"][fmt]["recorded"][name]}


def _agree(expected: dict[str, np.ndarray], fmt: str, rt: str, real: np.ndarray) -> float:
    got, ref = expected[int8_key(fmt, rt)][real], expected["fp32"][real]
    return float((got.argmax(1) == ref.argmax(1)).mean())


def asdict_case(c: Case) -> dict[str, Any]:
    return {"name": c.name, "kind": c.kind, "sha256": c.sha256, "row": c.row}


def _sha(path: Path) -> str:
    from xruntime_emotion.util import sha256_file

    return sha256_file(path)


def _summary(old: GoldenSet | None, new: GoldenSet) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": len(new.cases), "weights_sha256": new.manifest["weights_sha256"]}
    if old is None:
        out["changed"] = "new golden set"
        return out
    names_old = {c.name for c in old.cases}
    common = [c for c in new.cases if c.name in names_old]
    out["added_cases"] = len(new.cases) - len(common)
    out["removed_cases"] = len(names_old) - len(common)
    for key in new.expected:
        if key in old.expected and common:
            delta = np.abs(new.rows(key, common) - old.rows(key, common)).max(1)
            out[key] = {"cases_changed": int((delta > 0).sum()), "max_change": float(delta.max())}
        else:
            out[key] = "new"
    before = (old.manifest.get("detectors") or {}).get("recorded", {})
    for name, rec in new.manifest.get("detectors", {}).get("recorded", {}).items():
        if name in before and len(before[name]["boxes"]) == len(rec["boxes"]):
            moved = max(detector_golden.box_error(a, b) for a, b in zip(rec["boxes"], before[name]["boxes"]))
            out[f"detector {name}"] = {"max_box_change_px": moved}
        else:
            out[f"detector {name}"] = "new"
    return out
