"""runtime.safety, runtime.backends, runtime.preprocess, model.h5io, model.ir, check.golden: an attack corpus,
made by code at test time (no committed binaries), against every door an untrusted file comes through.

Hang and memory attacks run in a child process under a wall-clock timeout (and the probe's own memory
cap), so a regression fails here instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xruntime_emotion import EmotionClassifier, ModelIR
from xruntime_emotion.errors import ConformanceError, ImageError, ModelFileError, WeightsError
from xruntime_emotion.model.architecture import LABELS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FACE = np.full((48, 48), 128, np.uint8)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`xemotion ARGS` in a fresh process and an empty folder, under a wall-clock bound: a hang fails the test."""
    with tempfile.TemporaryDirectory(prefix="xemotion-attack-") as empty:
        return subprocess.run([sys.executable, "-m", "xruntime_emotion.cli", *args], capture_output=True, text=True,
                              cwd=empty, env={**os.environ, **(env or {})}, timeout=timeout)  # fmt: skip


def _one_line_failure(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode != 0, r.stdout[-1000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _face_png(tmp_path: Path) -> Path:
    Image.fromarray(FACE).save(tmp_path / "face.png")
    return tmp_path / "face.png"


def _linear_head(logits: str) -> tuple[list, list]:
    """Initializers and nodes of input [N,48,48,1] -> a seeded random linear layer -> ``logits`` [N,7]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.01, (48 * 48, 7)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 48 * 48], np.int64), "flat_shape")
    nodes = [
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], [logits]),
    ]
    return [w, shape], nodes


def _onnx_model(path: Path, extra_nodes: list, extra_inits: list, *, batch: object = "N", mix: str = "") -> Path:
    """A small valid emotion-contract ONNX (input [batch,48,48,1] -> probabilities [batch,7]); ``mix`` names a
    scalar the extra nodes compute, added times zero to the logits so that the runtime has to compute it."""
    inits, head = _linear_head("logits0")
    nodes = [*head, *extra_nodes]
    if mix:
        zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
        extra_inits = [*extra_inits, zero]
        nodes += [
            helper.make_node("Mul", [mix, "zero"], ["nothing"]),
            helper.make_node("Add", ["logits0", "nothing"], ["logits"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["logits0"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "attack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, 7])],
        [*inits, *extra_inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


# ---------------------------------------------------------------------- 1. hangs and non-regular files
def _loop_model(path: Path) -> Path:
    """An ONNX Loop of 10**12 trips: valid, and it never ends."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one_b"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, []),
        ],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one_b")],
    )
    trips = numpy_helper.from_array(np.array(10**12, np.int64), "trips")
    cond = numpy_helper.from_array(np.array(True), "cond")
    loop = helper.make_node("Loop", ["trips", "cond", "one"], ["acc"], body=body)
    return _onnx_model(path, [loop], [one, trips, cond], mix="acc")


def test_an_onnx_loop_that_never_ends_is_refused_within_the_probe_timeout(tmp_path: Path) -> None:
    """Before: `predict` hung forever (ONNX files were never probed)."""
    model = _loop_model(tmp_path / "loop.onnx")
    face = _face_png(tmp_path)
    r = run_cli("predict", "--model", str(model), str(face), env={"XEMOTION_PROBE_TIMEOUT": "3"})
    _one_line_failure(r, "did not finish with it within 3 s")
    r = run_cli("verify", "--artifacts", str(tmp_path), "--format", "onnx")  # nothing there of that name
    assert r.returncode != 0


def test_a_probe_timeout_that_is_not_a_number_is_one_clear_error(tmp_path: Path) -> None:
    r = run_cli("predict", "--model", str(_loop_model(tmp_path / "m.onnx")), str(_face_png(tmp_path)),
                env={"XEMOTION_PROBE_TIMEOUT": "soon"})  # fmt: skip
    _one_line_failure(r, "XEMOTION_PROBE_TIMEOUT", "'soon'")


@pytest.mark.parametrize("where", ["model", "image"])
def test_a_fifo_is_refused_without_blocking(where: str, tmp_path: Path) -> None:
    """Before: a FIFO given as a model or an image blocked forever on open()."""
    fifo = tmp_path / ("fifo.onnx" if where == "model" else "fifo.png")
    os.mkfifo(fifo)
    args = ["--model", str(fifo), str(_face_png(tmp_path))] if where == "model" else [str(fifo)]
    r = subprocess.run([sys.executable, "-m", "xruntime_emotion.cli", "predict", *args],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    _one_line_failure(r, "not a regular file")
    with pytest.raises((ModelFileError, ImageError), match="not a regular file"):
        if where == "model":
            EmotionClassifier.from_onnx(fifo)
        else:
            EmotionClassifier.default().predict(str(fifo))


# ------------------------------------------------------------------------------ 2. h5 reaching outside
def _deepface_h5(path: Path, ir: ModelIR, tamper: str, tmp_path: Path) -> Path:
    import h5py

    from xruntime_emotion.model.h5io import write_deepface_h5

    write_deepface_h5(ir, path)
    secret = tmp_path / "secret.bin"
    with h5py.File(path, "a") as f:
        g = f["conv2d"]
        kernel = g["conv2d/kernel:0"]
        shape, dtype = kernel.shape, kernel.dtype
        del g["conv2d/kernel:0"]
        if tamper == "external":
            secret.write_bytes(b"private " * (int(np.prod(shape)) * 4 // 8))
            g.create_dataset("conv2d/kernel:0", shape=shape, dtype=dtype, external=[(str(secret), 0, 2**20)])
        elif tamper == "soft-link":
            f.create_dataset("elsewhere", data=np.zeros(shape, dtype))
            g["conv2d/kernel:0"] = h5py.SoftLink("/elsewhere")
        elif tamper == "external-link":
            with h5py.File(tmp_path / "other.h5", "w") as o:
                o.create_dataset("k", data=np.zeros(shape, dtype))
            g["conv2d/kernel:0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/k")
        elif tamper == "virtual":
            with h5py.File(tmp_path / "src.h5", "w") as o:
                o.create_dataset("k", data=np.zeros(shape, dtype))
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(str(tmp_path / "src.h5"), "k", shape=shape)
            g.create_virtual_dataset("conv2d/kernel:0", layout)
        elif tamper == "huge-shape":  # declared, never written: the file stays small
            g.create_dataset("conv2d/kernel:0", shape=(200_000, 100_000), dtype=dtype, chunks=(1000, 1000))
    return path


@pytest.mark.parametrize("tamper", ["external", "soft-link", "external-link", "virtual", "huge-shape"])
def test_h5_weights_never_reach_outside_the_file_or_allocate_before_checking(
    tamper: str, tmp_path: Path, default_ir: ModelIR
) -> None:
    """Before: external storage loaded another file's bytes as weights (and `export` shipped them); a
    (200000, 100000) dataset was read whole before the shape check."""
    path = _deepface_h5(tmp_path / "w.h5", default_ir, tamper, tmp_path)
    want = {"external": "outside this file", "virtual": "outside this file", "huge-shape": "(200000, 100000)"}
    with pytest.raises(WeightsError, match=want.get(tamper, "only plain datasets are read")):
        ModelIR.load(path)
    r = run_cli("export", "--format", "onnx", "--via", "ir", "--weights", str(path), "-o", str(tmp_path / "a"))
    _one_line_failure(r)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"strides": [0, 0]}, "strides"),
        ({"activation": "gelu"}, "activation 'gelu'"),
        ({"units": 10**9}, "units"),
        ({"kernel": [60, 60]}, "no longer fits"),
    ],
)
def test_architectures_in_weights_files_are_validated(edit: dict, message: str, tmp_path: Path) -> None:
    """Before: stride 0 raised ZeroDivisionError; an unknown activation was accepted by `info`."""
    from xruntime_emotion.model.ir import DEEPFACE_LAYERS, Layer, LayerKind

    good = tmp_path / "good.npz"
    ModelIR.default().save_npz(good)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__architecture__"]))
    index = next(i for i, layer in enumerate(DEEPFACE_LAYERS) if layer.kind is LayerKind.CONV2D)
    meta["layers"][index].update(edit)
    arrays["__architecture__"] = np.array(json.dumps(meta))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(WeightsError, match=message):
        ModelIR.load(bad)
    _one_line_failure(run_cli("info", str(bad)), message)
    assert Layer("x", LayerKind.DENSE, 7).units == 7  # the same checks pass a sane layer


def _in_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Python ``code`` in a fresh process under a wall-clock bound: a hang fails the test instead of CI."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def _h5_with_linked_kernel(path: Path, ir: ModelIR, how: str, tmp_path: Path) -> Path:
    """DeepFace's layout, but the first kernel is named through a link in the middle of its path
    (``weight_names = via/kernel:0``), each link leading to a well-formed kernel of the right shape."""
    import h5py

    from xruntime_emotion.model.h5io import write_deepface_h5

    write_deepface_h5(ir, path)
    kernel = ir.weights["conv2d"][0]
    with h5py.File(path, "a") as f:
        g = f["conv2d"]
        del g["conv2d/kernel:0"]
        g.attrs["weight_names"] = np.array([b"via/kernel:0", b"conv2d/bias:0"])
        if how == "external-link":  # another file's numbers, all finite and of the right shape
            with h5py.File(tmp_path / "other.h5", "w") as o:
                o.create_dataset("g/kernel:0", data=np.full_like(kernel, 0.5))
            g["via"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/g")
        elif how == "soft-link":
            f.create_dataset("elsewhere/kernel:0", data=np.zeros_like(kernel))
            g["via"] = h5py.SoftLink("/elsewhere")
        elif how == "external-link-to-fifo":
            os.mkfifo(tmp_path / "pipe.h5")
            g["via"] = h5py.ExternalLink(str(tmp_path / "pipe.h5"), "/g")
    return path


@pytest.mark.parametrize("how", ["external-link", "soft-link", "external-link-to-fifo"])
def test_h5_links_in_the_middle_of_a_path_are_refused(how: str, tmp_path: Path, default_ir: ModelIR) -> None:
    """Before: only a path's last component was looked at; ``via/kernel:0`` with ``via`` an external link read
    the weights from another file, and one to a FIFO hung the loader."""
    path = _h5_with_linked_kernel(tmp_path / "w.h5", default_ir, how, tmp_path)
    kind = "ExternalLink" if how.startswith("external") else "SoftLink"
    r = _in_child(
        "from xruntime_emotion.model.ir import ModelIR\n"
        "from xruntime_emotion.errors import WeightsError\n"
        f"try:\n    ModelIR.load({str(path)!r})\n"
        "except WeightsError as exc:\n    print(exc)\nelse:\n    print('loaded')"
    )
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 1, r.stdout + r.stderr[-2000:]
    assert f"/conv2d/via is a {kind}; only plain datasets are read" in r.stdout, r.stdout
    for args in (["info", str(path)], ["predict", "--model", str(path), str(_face_png(tmp_path))]):
        _one_line_failure(run_cli(*args, timeout=60), f"/conv2d/via is a {kind}")


def test_an_h5_weights_path_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Before: HDF5 opened a FIFO by its name and waited for a writer for ever."""
    fifo = tmp_path / "weights.h5"
    os.mkfifo(fifo)
    r = _in_child(
        "from xruntime_emotion.model.h5io import read_deepface_h5\n"
        "from xruntime_emotion.errors import WeightsError\n"
        f"try:\n    read_deepface_h5({str(fifo)!r})\nexcept WeightsError as exc:\n    print(exc)"
    )
    assert r.returncode == 0 and "not a regular file" in r.stdout, r.stdout + r.stderr[-2000:]
    for args in (["info", str(fifo)], ["export", "--format", "onnx", "--via", "ir", "--weights", str(fifo),
                                       "-o", str(tmp_path / "out")]):  # fmt: skip
        _one_line_failure(run_cli(*args, timeout=60), "not a regular file")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- 3. the golden set seal
def test_the_golden_set_is_sealed(tmp_path: Path) -> None:
    """Before: NaN in expected.npz made every comparison pass, and a relaxed tolerance passed silently."""
    from helpers import _copy_golden

    from xruntime_emotion.atomic import write_npz
    from xruntime_emotion.check import golden as G

    d = _copy_golden(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["tolerances"]["fp32"]["max_abs"] = 1.0
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ConformanceError, match="does not match its seal"):
        G.load(d)
    d = _copy_golden(tmp_path / "nan")
    gs = G.load(d)
    expected = {**gs.expected, "fp32": np.full_like(gs.expected["fp32"], np.nan)}
    write_npz(d / "expected.npz", expected)
    with pytest.raises(ConformanceError, match="does not match its seal"):
        G.load(d)


def test_verify_fails_on_nan_expectations_even_when_resealed(tmp_path: Path, full_artifacts: Path) -> None:
    """Someone who re-seals NaN expectations still gets no pass: every comparison is NaN-safe."""
    from helpers import _copy_golden

    from xruntime_emotion.check import golden as G

    d = _copy_golden(tmp_path)
    gs = G.load(d)
    G.save(d, gs.manifest, {k: np.full_like(v, np.nan) for k, v in gs.expected.items()}, gs.faces)
    r = run_cli("verify", "--artifacts", str(full_artifacts), "--golden", str(d), "--json", str(tmp_path / "v.json"))
    assert r.returncode != 0
    rows = json.loads((tmp_path / "v.json").read_text())["results"]
    judged = [  # the model pairs: not the producer cross-check, not the detectors (whose boxes are not in expected)
        x for x in rows if x["status"] != "skipped" and " × " in x["pair"] and not x["format"].startswith("detector:")
    ]
    assert judged and all(x["status"] == "failed" for x in judged), [(x["pair"], x["status"]) for x in judged]


# ------------------------------------------------------------------------------------- 5. fixed batch
def test_a_fixed_batch_onnx_model_takes_any_number_of_faces(tmp_path: Path) -> None:
    """Before: a model with a fixed batch of 2 raised RecursionError for 3 faces."""
    path = _onnx_model(tmp_path / "b2.onnx", [], [], batch=2)
    clf = EmotionClassifier.from_onnx(path)
    faces = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    together = clf.predict(faces)
    apart = np.concatenate([clf.predict(f) for f in faces])
    assert together.shape == (5, 7)
    np.testing.assert_allclose(together, apart, atol=1e-6)


# ---------------------------------------------------------------------------------- 6. resource bombs
def test_a_model_that_asks_for_gigabytes_is_refused_by_the_probe(tmp_path: Path) -> None:
    """A 1x1 conv with 2**20 filters: ~9.6 GB of activations for one face. The probe's memory cap refuses it."""
    filters = 2**20
    conv_w = numpy_helper.from_array(np.ones((filters, 1, 1, 1), np.float32), "cw")
    perm = helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2])
    conv = helper.make_node("Conv", ["nchw", "cw"], ["wide"], kernel_shape=[1, 1])
    pool = helper.make_node("ReduceMean", ["wide"], ["m"], keepdims=0)
    path = _onnx_model(tmp_path / "wide.onnx", [perm, conv, pool], [conv_w], mix="m")
    r = run_cli("predict", "--model", str(path), str(_face_png(tmp_path)))
    _one_line_failure(r)


def test_a_huge_sparse_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Before: a 30 GB sparse file with TFLite's magic was read whole before probing."""
    path = tmp_path / "sparse.tflite"
    with open(path, "wb") as f:
        f.write(b"\x1c\x00\x00\x00TFL3")
        f.truncate(30 * 2**30)
    face = _face_png(tmp_path)
    r = subprocess.run([sys.executable, "-m", "xruntime_emotion.cli", "predict", "--model", str(path), str(face)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    _one_line_failure(r, "over the", "XEMOTION_MAX_MODEL_BYTES")
    r = subprocess.run([sys.executable, "-m", "xruntime_emotion.cli", "info", str(path)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    _one_line_failure(r)


def test_an_icon_hiding_a_huge_png_is_refused(tmp_path: Path) -> None:
    """Before: an ICO whose header says 16x16 decoded its embedded 12000x12000 PNG in full."""
    import io

    png = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(png, "PNG")
    data = png.getvalue()
    ico = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(data), 22) + data
    path = tmp_path / "face.ico"
    path.write_bytes(ico)
    r = run_cli("predict", str(path))
    _one_line_failure(r, "not a readable image")


# ------------------------------------------------------------------------------ 7. silent wrong answers
@pytest.mark.parametrize("shape", [(48, 48, 2), (48, 48, 5), (2, 3, 4, 5)])
def test_ambiguous_arrays_are_refused(shape: tuple[int, ...]) -> None:
    """Before: (48,48,2) and (48,48,5) were read as 48 faces of 48x2 or 48x5 pixels."""
    with pytest.raises(ImageError, match="accepted: "):
        EmotionClassifier.default().predict(np.zeros(shape, np.uint8))


def _foreign_output_model(path: Path, how: str) -> Path:
    inits, nodes = _linear_head("z")
    out_type, out_shape = TensorProto.FLOAT, ["N", 7]
    if how == "transposed":
        nodes.append(helper.make_node("Transpose", ["z"], ["probabilities"], perm=[1, 0]))
        out_shape = [7, "N"]
    elif how == "negative":
        nodes.append(helper.make_node("Neg", ["z"], ["probabilities"]))
    else:  # int64
        nodes.append(helper.make_node("Cast", ["z"], ["probabilities"], to=TensorProto.INT64))
        out_type = TensorProto.INT64
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", out_type, out_shape)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("how", "message"), [("transposed", "shape"), ("negative", "is not 7 probabilities"), ("int64", "int64")]
)
def test_outputs_that_are_not_probabilities_are_refused(how: str, message: str, tmp_path: Path) -> None:
    """Before: a [7,N], negative or int64 output was accepted and printed as probabilities."""
    path = _foreign_output_model(tmp_path / f"{how}.onnx", how)
    with pytest.raises(ModelFileError, match=message):
        EmotionClassifier.from_onnx(path).predict(np.zeros((3, 48, 48), np.uint8))
    _one_line_failure(run_cli("predict", "--model", str(path), str(_face_png(tmp_path))), message)


@pytest.mark.parametrize("value", [np.nan, 1e30])
def test_float_image_files_outside_the_unit_range_are_refused(value: float, tmp_path: Path) -> None:
    """Before: a float TIFF of NaN or 1e30 was classified."""
    path = tmp_path / "face.tif"
    Image.fromarray(np.full((48, 48), value, np.float32), mode="F").save(path)
    _one_line_failure(run_cli("predict", str(path)), "float image")
    ok = tmp_path / "ok.tif"
    Image.fromarray(np.full((48, 48), 0.5, np.float32), mode="F").save(ok)
    assert EmotionClassifier.default().classify(str(ok)).label in LABELS


# ------------------------------------------------------------------------- the fuzzer, end to end
def test_verify_on_a_folder_with_a_fuzzed_mutant(tmp_path: Path, full_artifacts: Path) -> None:
    """The fuzzer's mutants reach `verify` through the same door: the damaged pairs fail in one line each,
    every other pair still passes, and nothing crashes or hangs."""
    import shutil

    from helpers import _script

    fuzz = _script("fuzz_models")
    d = tmp_path / "a"
    shutil.copytree(full_artifacts, d)
    (d / "export_manifest.json").unlink()  # the manifest's sha256 would name the change before any runtime
    name = "emotion_uint8_float32.tflite"
    original = (full_artifacts / name).read_bytes()
    for i in range(50):  # the first mutant that no longer loads
        (d / name).write_bytes(fuzz.mutant(original, "tflite-int8", 0, i))
        try:
            EmotionClassifier.from_file(d / name)
        except ModelFileError:
            break
    else:
        pytest.fail("no refused mutant among the first 50")
    r = run_cli("verify", "--artifacts", str(d), "--json", str(tmp_path / "v.json"), timeout=600)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]  # TF's own chatter aside
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(errors) == 1, r.stderr
    rows = {x["pair"]: x["status"] for x in json.loads((tmp_path / "v.json").read_text())["results"]}
    damaged = {p for p in rows if p.startswith("tflite-int8 ×")}
    assert {rows[p] for p in damaged if rows[p] != "skipped"} == {"failed"}
    assert all(rows[p] in ("passed", "skipped") for p in rows if p not in damaged), rows


# ------------------------------------------------------------------ the door every outside file comes through
_DOOR = """
import sys
from xruntime_emotion import util
from xruntime_emotion.errors import XEmotionError
how, path = sys.argv[1:]
try:
    if how == "sha256":
        util.sha256_file(path)
    elif how == "json":
        util.read_json(path, 1 << 20)
    else:
        util.read_npz(path, 1 << 20, 1 << 20)
except XEmotionError as exc:
    print(exc)
else:
    print("read")
"""


@pytest.mark.parametrize("attack", ["fifo-json", "fifo-sha256", "dev-zero-json", "dev-zero-sha256", "npz-header"])
def test_the_door_refuses_what_is_not_a_small_regular_file(attack: str, tmp_path: Path) -> None:
    """Before: sha256_file (every digest of a model or weights file) waited on a FIFO and hashed /dev/zero
    for ever; an npz whose header declares 10**12 values was allocated before it was read."""
    path = tmp_path / "x"
    if attack.startswith("fifo"):
        os.mkfifo(path)
    elif attack.startswith("dev-zero"):
        path.symlink_to("/dev/zero")  # a link is followed here (the golden set's files refuse links too)
    else:
        import io
        import zipfile

        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.npy", header.getvalue() + bytes(64))
    how = attack.rsplit("-", 1)[-1]
    r = subprocess.run([sys.executable, "-c", _DOOR, how if how != "header" else "npz", str(path)],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    want = "declares (1000000000000,)" if attack == "npz-header" else "not a regular file"
    assert want in r.stdout, r.stdout
