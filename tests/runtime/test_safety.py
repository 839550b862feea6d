"""xruntime_emotion.runtime.safety and the loaders: malformed and fuzzed models, the probe, one error family."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FUZZED
from helpers import _script, _write, run_cli

from xruntime_emotion import EmotionClassifier
from xruntime_emotion.errors import (
    IntegrityError,
    ModelFileError,
    UnsafeModelError,
    XEmotionError,
)
from xruntime_emotion.runtime import safety

FUZZ_COUNT = 200


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


def test_errors_are_one_family() -> None:
    assert issubclass(UnsafeModelError, ModelFileError) and issubclass(IntegrityError, XEmotionError)
