"""Issue: reliability. Malformed models, the probe, bad images, atomic and deterministic exports,
integrity against manifests, and one classifier shared by many threads."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import need
from helpers import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xruntime_emotion import EmotionClassifier, ModelIR
from xruntime_emotion.errors import ImageError, IntegrityError, ModelFileError, UnsafeModelError, XEmotionError
from xruntime_emotion.model.catalog import FORMATS
from xruntime_emotion.runtime import safety
from xruntime_emotion.runtime.preprocess import MAX_PIXELS, load_image, prepare
from xruntime_emotion.util import sha256_file

ROOT = Path(__file__).resolve().parents[1]
FUZZED = [f.name for f in FORMATS.values() if f.exported and f.runs_on_host]  # every host-run kind
FUZZ_COUNT = 200


def _script(name: str) -> ModuleType:
    """Import scripts/NAME.py (the scripts are not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ir_export(tmp_path_factory: pytest.TempPathFactory, random_ir: ModelIR) -> Path:
    """An ONNX straight from the IR (no TensorFlow, no data) with its export manifest."""
    from exporters.context import ExportContext, ExportOptions
    from exporters.pipeline import export

    out = tmp_path_factory.mktemp("ir-export")
    export(ExportContext(random_ir, ExportOptions(onnx_via="ir")), ["onnx"], out)
    return out


@pytest.fixture(scope="module")
def onnx_clf(ir_export: Path) -> EmotionClassifier:
    return EmotionClassifier.from_onnx(ir_export / "emotion_float32_ir.onnx", threads=1)


@pytest.fixture(scope="module")
def twin_exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same weights and options exported by two `xemotion export` processes (different hash seeds)."""
    from xruntime_emotion.runtime.backends import RUNTIMES

    need(RUNTIMES["keras"].available(), "TensorFlow (the export extra) is required")
    dirs = (tmp_path_factory.mktemp("export-a"), tmp_path_factory.mktemp("export-b"))
    procs = []
    for seed, d in enumerate(dirs, 1):
        args = [a for f in FUZZED for a in ("-f", f)]
        cmd = [sys.executable, "-m", "xruntime_emotion.cli", "export", *args, "-o", str(d)]
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=d.parent)
        )
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-3000:]
    return dirs


# --------------------------------------------------------------------------------- malformed models
@pytest.mark.parametrize("fmt", FUZZED)
def test_fuzzed_models_never_crash(fmt: str, twin_exports: tuple[Path, Path]) -> None:
    fuzz = _script("fuzz_models")
    model = fuzz.find_models([twin_exports[0]], [fmt])[fmt]
    tally = fuzz.fuzz(model, fmt, FUZZ_COUNT, seed=0, timeout=120.0)
    assert tally.mutants == FUZZ_COUNT
    assert (tally.crashed, tally.hung, tally.unexpected) == (0, 0, 0), tally.problems
    assert tally.ran > 0 and tally.refused > 0, tally.line()  # the mutations both break and spare files


def test_mutations_are_seeded_and_reach_the_whole_file() -> None:
    fuzz = _script("fuzz_models")
    data = bytes(range(256)) * 400
    assert fuzz.mutant(data, "onnx", 3, 7) == fuzz.mutant(data, "onnx", 3, 7)
    assert fuzz.mutant(data, "onnx", 3, 7) != fuzz.mutant(data, "onnx", 3, 8)
    first = []
    for i in range(300):
        m = fuzz.mutant(data, "onnx", 0, i)
        diff = [k for k in range(min(len(m), len(data))) if m[k] != data[k]]
        first.append(diff[0] if diff else min(len(m), len(data)))
    middle = [k for k in first if 8192 < k < len(data) - 16384]
    assert len(middle) > 50, "mutations must land in the middle of the file too, not only the header"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _bad_files(tmp: Path, onnx: Path) -> dict[str, Path]:
    good = onnx.read_bytes()
    png = tmp / "face.png"
    from PIL import Image

    Image.fromarray(np.zeros((48, 48), np.uint8)).save(png)
    return {
        "empty.onnx": _write(tmp / "empty.onnx", b""),
        "empty.tflite": _write(tmp / "empty.tflite", b""),
        "truncated.onnx": _write(tmp / "truncated.onnx", good[: len(good) // 2]),
        "header-flipped.onnx": _write(tmp / "header-flipped.onnx", bytes([good[0] ^ 0xFF]) + good[1:]),
        "text.tflite": _write(tmp / "text.tflite", b"not a model at all\n" * 10),
        "png-named.onnx": _write(tmp / "png-named.onnx", png.read_bytes()),
        "onnx-named.tflite": _write(tmp / "onnx-named.tflite", good),
        "random.bin": _write(tmp / "random.bin", np.random.default_rng(0).bytes(4096)),
        "missing.onnx": tmp / "missing.onnx",
    }


@pytest.mark.parametrize(
    "name",
    [
        "empty.onnx",
        "empty.tflite",
        "truncated.onnx",
        "header-flipped.onnx",
        "text.tflite",
        "png-named.onnx",
        "onnx-named.tflite",
        "random.bin",
        "missing.onnx",
    ],
)
@pytest.mark.parametrize("opener", ["from_file", "from_onnx", "from_tflite"])
def test_malformed_model_is_a_clear_error(name: str, opener: str, ir_export: Path, tmp_path: Path) -> None:
    path = _bad_files(tmp_path, ir_export / "emotion_float32_ir.onnx")[name]
    if (opener, name) == ("from_onnx", "onnx-named.tflite"):  # ONNX has no magic: from_onnx trusts the caller
        clf = EmotionClassifier.from_onnx(path)
        assert clf.backend.runtime == "onnxruntime" and clf.predict(np.zeros((48, 48), np.uint8)).shape == (1, 7)
        return
    with pytest.raises(ModelFileError, match=str(path.name)):
        getattr(EmotionClassifier, opener)(path)


def test_tflite_with_onnx_extension_is_opened_by_content(twin_exports: tuple[Path, Path], tmp_path: Path) -> None:
    """A file's kind is its content: a TFLite file named .onnx loads as TFLite, and from_onnx refuses it."""
    renamed = _write(tmp_path / "model.onnx", (twin_exports[0] / "emotion_float32.tflite").read_bytes())
    assert EmotionClassifier.from_file(renamed).backend.runtime == "litert"
    with pytest.raises(ModelFileError, match="runtime onnxruntime cannot run a .tflite file"):
        EmotionClassifier.from_onnx(renamed)


def _onnx_variants(src: Path, tmp: Path) -> dict[str, Path]:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    base = onnx.load(str(src))

    def variant(name: str, edit: Any) -> Path:
        m = onnx.ModelProto()
        m.CopyFrom(base)
        edit(m)
        p = tmp / f"{name}.onnx"
        p.write_bytes(m.SerializeToString())
        return p

    def input_dims(m: Any) -> None:
        m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2**40

    def initializer_dims(m: Any) -> None:
        t = m.graph.initializer[0]
        del t.dims[:]
        t.dims.extend([2**31, 2**31])

    def negative_dims(m: Any) -> None:
        m.graph.initializer[0].dims[0] = -5

    def huge_constant(m: Any) -> None:  # a ConstantOfShape asking for 2^40 x 7 floats
        m.graph.initializer.append(numpy_helper.from_array(np.array([2**40, 7], np.int64), "huge_shape"))
        out = m.graph.output[0].name
        for n in m.graph.node:
            n.output[:] = [f"{o}_pre" if o == out else o for o in n.output]
        m.graph.node.append(helper.make_node("ConstantOfShape", ["huge_shape"], ["huge"]))
        m.graph.node.append(helper.make_node("Add", [f"{out}_pre", "huge"], [out]))

    edits = [input_dims, initializer_dims, negative_dims, huge_constant]
    return {e.__name__: variant(e.__name__, e) for e in edits}


@pytest.mark.parametrize("case", ["input_dims", "initializer_dims", "negative_dims", "huge_constant"])
def test_onnx_with_absurd_dims(case: str, ir_export: Path, tmp_path: Path) -> None:
    path = _onnx_variants(ir_export / "emotion_float32_ir.onnx", tmp_path)[case]
    with pytest.raises(ModelFileError, match=path.name):
        EmotionClassifier.from_file(path).predict(np.zeros((2, 48, 48), np.uint8))


def _tflite_variants(src: Path, tmp: Path) -> dict[str, Path]:
    """Files the flatbuffer verifier accepts (offsets are fine) that break indices, sizes and options."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    import copy

    base = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(src.read_bytes(), 0))

    def sg(m: Any) -> Any:
        return m.subgraphs[0]

    def conv_stride_zero(m: Any) -> None:
        conv = next(op for op in sg(m).operators if type(op.builtinOptions).__name__ == "Conv2DOptionsT")
        conv.builtinOptions.strideW = 0

    def tensor_index_out_of_range(m: Any) -> None:
        sg(m).operators[0].inputs[1] = 1000

    def buffer_index_out_of_range(m: Any) -> None:
        sg(m).tensors[sg(m).operators[0].inputs[1]].buffer = 5000

    def buffer_too_small(m: Any) -> None:
        t = sg(m).tensors[sg(m).operators[0].inputs[1]]
        m.buffers[t.buffer].data = m.buffers[t.buffer].data[:10]

    def opcode_index_out_of_range(m: Any) -> None:
        sg(m).operators[1].opcodeIndex = 77

    def input_rank_five(m: Any) -> None:
        t = sg(m).tensors[sg(m).inputs[0]]
        t.shape = np.array([1, 48, 48, 1, 1], np.int32)
        t.shapeSignature = np.array([-1, 48, 48, 1, 1], np.int32)

    def thirteen_gb_tensor(m: Any) -> None:  # what a fuzzed byte did: an intermediate declared [1,3,8388611,128]
        out = sg(m).operators[0].outputs[0]
        sg(m).tensors[out].shape = np.array([1, 3, 2**23 + 3, 128], np.int32)

    out = {}
    for edit in (
        thirteen_gb_tensor,
        conv_stride_zero,
        tensor_index_out_of_range,
        buffer_index_out_of_range,
        buffer_too_small,
        opcode_index_out_of_range,
        input_rank_five,
    ):
        m = copy.deepcopy(base)
        edit(m)
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        out[edit.__name__] = _write(tmp / f"{edit.__name__}.tflite", bytes(b.Output()))
    return out


@pytest.mark.parametrize(
    "case",
    [
        "conv_stride_zero",
        "tensor_index_out_of_range",
        "buffer_index_out_of_range",
        "buffer_too_small",
        "opcode_index_out_of_range",
        "input_rank_five",
    ],
)
def test_verified_but_broken_tflite(case: str, twin_exports: tuple[Path, Path], tmp_path: Path) -> None:
    path = _tflite_variants(twin_exports[0] / "emotion_float32.tflite", tmp_path)[case]
    with pytest.raises(ModelFileError, match=path.name):
        EmotionClassifier.from_file(path).predict(np.zeros((2, 48, 48), np.uint8))


def test_probe_caps_memory(twin_exports: tuple[Path, Path], tmp_path: Path) -> None:
    """Loaded unprobed by a process without a memory cap, a file like this (a fuzzed byte) had it
    allocate ~13 GB until the OOM killer ended it. The probe's checker runs under a 4 GiB cap: the
    allocation fails there and the file is refused, while this process never touches it."""
    path = _tflite_variants(twin_exports[0] / "emotion_float32.tflite", tmp_path)["thirteen_gb_tensor"]
    with pytest.raises(ModelFileError) as info:
        safety.probe(path, "litert")  # the host itself never opens it here
    assert not isinstance(info.value, UnsafeModelError), "refused by the cap, not by a death"


@pytest.mark.parametrize("command", ["predict", "info"])
def test_cli_refuses_malformed_models(command: str, twin_exports: tuple[Path, Path], tmp_path: Path) -> None:
    good = (twin_exports[0] / "emotion_uint8_float32.tflite").read_bytes()
    bad = _write(tmp_path / "bad.tflite", good[: len(good) // 3])
    face = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(np.zeros((48, 48), np.uint8)).save(face)
    args = ["predict", str(face), "--model", str(bad)] if command == "predict" else ["info", str(bad)]
    r = run_cli(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error:" in r.stderr and "bad.tflite" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ the probe
CRASHER = '''
"""Test only: a runtime that dies by SIGSEGV (or hangs) on files named so, as a malformed file could."""
import os, signal, time
import xruntime_emotion.runtime.backends.litert as litert

_init = litert.LiteRTBackend.__init__


def init(self, path, **kw):
    if "segfault" in path.name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in path.name:
        time.sleep(600)
    _init(self, path, **kw)


litert.LiteRTBackend.__init__ = init
'''


@pytest.fixture()
def crashing_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Helper processes started from now on load CRASHER (a sitecustomize); the host does not."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASHER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    safety.shutdown()
    yield
    monkeypatch.undo()
    safety.shutdown()


@pytest.mark.usefixtures("crashing_runtime")
def test_probe_survives_a_crashing_interpreter(twin_exports: tuple[Path, Path], tmp_path: Path) -> None:
    good = twin_exports[0] / "emotion_uint8_float32.tflite"
    bad = _write(tmp_path / "segfault.tflite", good.read_bytes() + b"\0")  # new bytes: not cached
    with pytest.raises(UnsafeModelError, match="crashed \\(SIGSEGV\\)") as info:
        EmotionClassifier.from_tflite(bad)
    assert info.value.signal == signal.SIGSEGV
    with pytest.raises(UnsafeModelError):
        EmotionClassifier.from_file(bad)  # refusals are not cached: the file is checked again
    fresh = _write(tmp_path / "fresh.tflite", good.read_bytes() + b"\0\0")  # new bytes: the helper is asked
    EmotionClassifier.from_tflite(fresh).predict(np.zeros((1, 48, 48), np.uint8))


@pytest.mark.usefixtures("crashing_runtime")
def test_probe_times_out(twin_exports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(safety, "PROBE_TIMEOUT_S", 2.0)
    bad = _write(tmp_path / "hang.tflite", (twin_exports[0] / "emotion_float32.tflite").read_bytes() + b"\1")
    t0 = time.monotonic()
    with pytest.raises(UnsafeModelError, match="did not finish"):
        EmotionClassifier.from_tflite(bad)
    assert time.monotonic() - t0 < 15


def test_probe_passes_are_cached_and_load_the_checked_bytes(
    twin_exports: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = twin_exports[0] / "emotion_float32.tflite"
    EmotionClassifier.from_tflite(path)

    def no_helper(request: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("probed twice")

    monkeypatch.setattr(safety, "_ask_server", no_helper)
    monkeypatch.setattr(safety, "_ask_once", no_helper)
    clf = EmotionClassifier.from_file(path)
    assert clf.backend._model == path.read_bytes()  # type: ignore[attr-defined]
    unprobed = EmotionClassifier.from_file(path, probe=False)  # never asks the helper either
    assert unprobed.backend.runtime == clf.backend.runtime == "litert"


# ------------------------------------------------------------------------------- images and arrays
def _png_bomb(path: Path, side: int) -> Path:
    """A tiny PNG whose header claims side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return _write(
        path,
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""),
    )


@pytest.mark.parametrize("side", [10_000, 100_000])  # past our limit; past Pillow's too
def test_decompression_bomb_is_refused(side: int, tmp_path: Path) -> None:
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError, match=f"limit of {MAX_PIXELS} pixels"):
        load_image(_png_bomb(tmp_path / "bomb.png", side))


@pytest.mark.parametrize("content", [b"", b"GIF89a", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_unreadable_image_files(content: bytes, tmp_path: Path, onnx_clf: EmotionClassifier) -> None:
    path = _write(tmp_path / "face.png", content)
    with pytest.raises(ImageError, match="face.png"):
        onnx_clf.predict(path)


def test_image_conversions(tmp_path: Path) -> None:
    from PIL import Image

    grey = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    rgb = np.stack([grey, 255 - grey, grey // 2], -1)
    # 16-bit grey: divided by 257, the same for a dark image as for a bright one
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.array_equal(load_image(tmp_path / "g16.png"), grey)
    dark = (grey // 64).astype(np.uint16) * 257  # every value <= 255 * 257 / 64
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert np.array_equal(load_image(tmp_path / "dark16.png"), grey // 64)
    # RGBA: alpha dropped
    Image.fromarray(np.dstack([rgb, np.full(grey.shape, 9, np.uint8)])).save(tmp_path / "rgba.png")
    assert np.array_equal(load_image(tmp_path / "rgba.png"), rgb)
    # CMYK JPEG: to RGB
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert load_image(tmp_path / "cmyk.jpg").shape == (48, 64, 3)
    # EXIF orientation 6 (rotate 90 clockwise): 48x64 stored, 64x48 seen
    im = Image.fromarray(grey)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "rot.jpg").shape == (64, 48)
    # 1x1: enlarged
    Image.fromarray(np.array([[200]], np.uint8)).save(tmp_path / "one.png")
    x = prepare(tmp_path / "one.png")
    assert x.shape == (1, 48, 48, 1) and np.allclose(x, 200 / 255)


@pytest.mark.parametrize(
    "bad",
    [
        np.full((48, 48), np.nan, np.float32),
        np.full((48, 48), np.inf),
        np.full((48, 48), 2.0),
        np.full((48, 48), -0.5, np.float32),
        np.zeros((48, 48), np.int64),
        np.zeros((48, 48), bool),
        np.zeros((48, 48), np.complex64),
        np.zeros((2, 48, 48, 2), np.uint8),
        np.zeros((2, 2, 48, 48, 1), np.uint8),
        np.zeros(48, np.uint8),
        np.array(3, np.uint8),
        np.zeros((0, 48, 48, 1), np.float32),
        np.zeros((0, 48, 48), np.uint8),
        np.zeros((0, 5), np.uint8),
        np.array([None, None]),
    ],
    ids=lambda a: f"{a.dtype}{list(a.shape)}",
)
def test_bad_arrays(bad: np.ndarray, onnx_clf: EmotionClassifier) -> None:
    with pytest.raises(ImageError):
        onnx_clf.predict(bad)


@pytest.mark.parametrize("bad", [[], [[1, 2], [3]], b"\x89PNG", 3.5, None, {"a": 1}, [np.zeros((4, 4)), None]])
def test_bad_python_inputs(bad: Any, onnx_clf: EmotionClassifier) -> None:
    with pytest.raises(ImageError):
        onnx_clf.predict(bad)


DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
)
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6),
    st.sampled_from([(48, 48), (48, 48, 1), (48, 48, 3), (48, 48, 4), (2, 48, 48), (3, 48, 48, 1), (1, 1), (1, 7, 4)]),
)
ANY_ARRAY = st.one_of(
    hnp.arrays(DTYPES, SHAPES),  # any values, NaN and inf included
    hnp.arrays(st.sampled_from([np.float32, np.float64]), SHAPES, elements=st.floats(0, 1, width=32)),
    hnp.arrays(np.uint8, SHAPES),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def surely_valid(a: Any) -> bool:
    """A face the documented grammar accepts: grey (H,W), (H,W,1|3|4) or a batch (N,48,48), non-empty, in
    uint8/uint16, or float32/64 within [0, 1]. Refusing one of these is a bug, not caution."""
    if not isinstance(a, np.ndarray) or a.size == 0:
        return False
    if a.dtype in (np.uint8, np.uint16):
        values = True
    elif a.dtype in (np.float32, np.float64):
        values = bool(np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0)
    else:
        return False
    shape = a.ndim == 2 or (a.ndim == 3 and (a.shape[2] in (1, 3, 4) or a.shape[1:] == (48, 48)))
    return values and shape


@PROPERTY
@given(a=ANY_ARRAY)
def test_prepare_returns_the_contract_or_an_image_error(a: np.ndarray) -> None:
    try:
        x = prepare(a)
    except ImageError:
        assert not surely_valid(a), f"a valid face was refused: {a.dtype} {a.shape}"
        return
    assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (48, 48, 1) and len(x) >= 1
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0


@PROPERTY
@given(faces=st.one_of(ANY_ARRAY, st.lists(ANY_ARRAY, min_size=0, max_size=3)))
def test_predict_answers_or_raises_an_image_error(faces: Any, onnx_clf: EmotionClassifier) -> None:
    try:
        p = onnx_clf.predict(faces)
    except ImageError:
        if isinstance(faces, np.ndarray):
            assert not surely_valid(faces), f"a valid face was refused: {faces.dtype} {faces.shape}"
        else:  # a list: each item is one face, never a batch
            one_face = [surely_valid(f) and (f.ndim == 2 or f.shape[2] in (1, 3, 4)) for f in faces]
            assert not (faces and all(one_face)), "valid faces were refused"
        return
    assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 7
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1.0, atol=1e-4)
    assert np.array_equal(p, onnx_clf.predict(faces)), "the same question must get the same answer"


@PROPERTY
@given(a=hnp.arrays(np.uint8, st.sampled_from([(48, 48), (30, 70), (48, 48, 3), (100, 90, 4)])))
def test_dtype_and_layout_conversions_agree(a: np.ndarray) -> None:
    """uint8, uint16 (x257) and float (/255) copies of one image are the same face."""
    x8 = prepare(a)
    assert np.allclose(prepare(a.astype(np.uint16) * 257), x8, atol=1e-6)
    assert np.allclose(prepare(a.astype(np.float64) / 255.0), x8, atol=1e-6)
    assert np.array_equal(prepare([a, a]), np.concatenate([x8, x8]))


# ------------------------------------------------------------------------------------ atomic export
STALL_EXPORT = """
import sys, time
from pathlib import Path
from exporters import pipeline
from exporters.context import ExportContext, ExportOptions
from xruntime_emotion.model.ir import ModelIR

def stall(ctx, fmt, path):  # the artifact is written in full, not yet renamed into place
    print("written", Path(path).stat().st_size, flush=True)
    time.sleep(600)

pipeline.validate = stall
pipeline.export(ExportContext(ModelIR.load(sys.argv[1]), ExportOptions(onnx_via="ir")), ["onnx"], Path(sys.argv[2]))
"""


def _killed_mid_export(tmp_path: Path, random_ir: ModelIR) -> Path:
    weights = random_ir.save_npz(tmp_path / "w.npz")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen(
        [sys.executable, "-c", STALL_EXPORT, str(weights), str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("written") and int(line.split()[1]) > 1_000_000, line
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    return out


def test_export_killed_mid_way_leaves_nothing(tmp_path: Path, random_ir: ModelIR) -> None:
    from xruntime_emotion.atomic import _anonymous

    out = _killed_mid_export(tmp_path, random_ir)
    left = sorted(p.name for p in out.iterdir())
    fd = _anonymous(out)
    if fd is not None:  # Linux, a file system with O_TMPFILE
        os.close(fd)
        assert left == []  # no artifact, no .part, no manifest
    else:  # the documented fallback: only a hidden temporary file, never the artifact
        assert all(n.startswith(".emotion_float32_ir.onnx.") and n.endswith(".part") for n in left), left


def test_failed_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    from xruntime_emotion.atomic import atomic_path

    for named in (False, True):
        with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin", named=named) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_exports_are_deterministic(twin_exports: tuple[Path, Path]) -> None:
    a, b = twin_exports
    ma, mb = (json.loads((d / "export_manifest.json").read_text()) for d in (a, b))
    assert set(ma["artifacts"]) == {"onnx", "onnx-int8", "tflite-fp32", "tflite-int8"}
    for name, entry in ma["artifacts"].items():
        assert entry["sha256"] == sha256_file(a / entry["file"]), name
        assert entry["sha256"] == mb["artifacts"][name]["sha256"], f"{name} differs between two export processes"
    assert (a / "export_manifest.json").read_bytes() == (b / "export_manifest.json").read_bytes()


# -------------------------------------------------------------------------------------------- integrity
def test_loading_through_the_manifest_checks_sha256(ir_export: Path, tmp_path: Path) -> None:
    import shutil

    from xruntime_emotion.runtime.integrity import verified_path

    copy = Path(shutil.copytree(ir_export, tmp_path / "copy"))
    EmotionClassifier.from_manifest(copy, "onnx-ir").predict(np.zeros((1, 48, 48), np.uint8))
    f = copy / "emotion_float32_ir.onnx"
    recorded = json.loads((copy / "export_manifest.json").read_text())["artifacts"]["onnx-ir"]["sha256"]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1  # one bit in the weights: still a loadable model
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        EmotionClassifier.from_manifest(copy, "onnx-ir")
    assert recorded in str(info.value) and sha256_file(f) in str(info.value)
    with pytest.raises(IntegrityError, match="record no 'tflite-int8'"):
        verified_path(copy, "tflite-int8")


def test_cli_target_checks_the_export_manifest(
    twin_exports: tuple[Path, Path], tmp_path: Path, happy_jpg: Path
) -> None:
    import shutil

    copy = Path(shutil.copytree(twin_exports[0], tmp_path / "artifacts"))
    args = ("predict", str(happy_jpg), "--target", "imx8mp", "--artifacts", str(copy))
    assert run_cli(*args).returncode == 0
    f = copy / "emotion_uint8_float32.tflite"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    r = run_cli(*args)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    recorded = json.loads((copy / "export_manifest.json").read_text())["artifacts"]["tflite-int8"]["sha256"]
    assert recorded in r.stderr and sha256_file(f) in r.stderr


def test_weights_through_their_manifest(random_ir: ModelIR, tmp_path: Path) -> None:
    from xruntime_emotion.runtime.integrity import load_weights

    npz = random_ir.save_npz(tmp_path / "emotion_weights.npz")
    manifest = {"weights": {"npz": npz.name, "npz_sha256": sha256_file(npz)}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_weights(tmp_path).weights_sha256 == random_ir.weights_sha256
    manifest["weights"]["npz_sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=f"records {'0' * 64}"):
        load_weights(tmp_path)


# ------------------------------------------------------------------------------------------ concurrency
def test_one_classifier_many_threads_onnx(onnx_clf: EmotionClassifier) -> None:
    r = _script("concurrency").run(onnx_clf, threads=8, predictions=150)
    assert (r.mismatches, r.errors) == (0, 0), r.error_types


@pytest.mark.parametrize("name", ["emotion_float32.tflite", "emotion_uint8_float32.tflite"])
def test_one_classifier_many_threads_tflite(name: str, twin_exports: tuple[Path, Path]) -> None:
    clf = EmotionClassifier.from_tflite(twin_exports[0] / name)
    r = _script("concurrency").run(clf, threads=8, predictions=150)
    assert (r.mismatches, r.errors) == (0, 0), r.error_types


def test_errors_are_one_family() -> None:
    assert issubclass(UnsafeModelError, ModelFileError) and issubclass(IntegrityError, XEmotionError)
