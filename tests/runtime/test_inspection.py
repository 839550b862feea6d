"""xruntime_emotion.runtime.inspection: the dependency-free ONNX/TFLite reader, checked against onnx and LiteRT.

TFLite files are hand-built here with a tiny FlatBuffers writer (so the reader is tested in the base install)
and, when TensorFlow is importable, converted from a tiny Keras model. ONNX files are the shipped model and
small graphs written with ``onnx.helper``.
"""

from __future__ import annotations

import os
import random
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xruntime_emotion
from xruntime_emotion.errors import ModelFileError
from xruntime_emotion.runtime.inspection import (
    _BUILTIN_OPS,
    ModelInfo,
    Tensor,
    inspect_bytes,
    inspect_file,
    output_step,
)

SHIPPED_ONNX = Path(xruntime_emotion.__file__).parent / "weights" / "emotion_float32.onnx"

# ------------------------------------------------------------------------------- a tiny FlatBuffers writer
# A table is a dict {slot: (kind, value)}. Children are written after their parent (uoffsets point forward),
# vtables just before their table; scalars and vector elements are aligned as the FlatBuffers verifier wants.
# A table object listed several times in a "tables" vector is written once and shared.

_SCALAR = {"i8": "<b", "u8": "<B", "i32": "<i", "u32": "<I", "u64": "<Q", "f32": "<f"}
_VECTOR = {"i32s": "<i", "f32s": "<f", "i64s": "<q"}
Table = dict[int, tuple[str, Any]]


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray(8)
        self.buf[4:8] = b"TFL3"
        self.written: dict[int, int] = {}

    def pad(self, align: int, extra: int = 0) -> None:
        while (len(self.buf) + extra) % align:
            self.buf.append(0)

    def child(self, kind: str, value: Any) -> int:
        if kind == "table":
            return self.table(value)
        if kind == "tables":
            self.pad(4)
            start = len(self.buf)
            self.buf += struct.pack("<I", len(value)) + bytes(4 * len(value))
            for k, t in enumerate(value):
                pos = self.written[id(t)] if id(t) in self.written else self.table(t)
                loc = start + 4 + 4 * k
                struct.pack_into("<I", self.buf, loc, pos - loc)
            return start
        if kind in ("str", "u8s"):
            raw = value.encode() if kind == "str" else bytes(value)
            self.pad(4)
            start = len(self.buf)
            self.buf += struct.pack("<I", len(raw)) + raw + b"\0"  # strings are NUL-terminated
            return start
        fmt = _VECTOR[kind]
        self.pad(max(4, struct.calcsize(fmt)), 4)
        start = len(self.buf)
        self.buf += struct.pack("<I", len(value)) + b"".join(struct.pack(fmt, v) for v in value)
        return start

    def table(self, t: Table) -> int:
        slots = max(t) + 1 if t else 0
        offsets: dict[int, int] = {}
        size = 4
        for slot in sorted(t):
            n = struct.calcsize(_SCALAR[t[slot][0]]) if t[slot][0] in _SCALAR else 4
            size = -(-size // n) * n
            offsets[slot] = size
            size += n
        self.pad(2)
        vt = len(self.buf)
        self.buf += struct.pack(f"<{2 + slots}H", 4 + 2 * slots, size, *(offsets.get(s, 0) for s in range(slots)))
        self.pad(8)
        pos = len(self.buf)
        self.written[id(t)] = pos
        self.buf += bytes(size)
        struct.pack_into("<i", self.buf, pos, pos - vt)
        for slot, (kind, value) in sorted(t.items()):
            if kind in _SCALAR:
                struct.pack_into(_SCALAR[kind], self.buf, pos + offsets[slot], value)
        for slot, (kind, value) in sorted(t.items()):
            if kind not in _SCALAR:
                target = self.child(kind, value)
                struct.pack_into("<I", self.buf, pos + offsets[slot], target - (pos + offsets[slot]))
        return pos


def write_flatbuffer(root: Table, tail: bytes = b"") -> bytes:
    w = _Writer()
    struct.pack_into("<I", w.buf, 0, w.table(root))
    return bytes(w.buf) + tail


def tiny_model() -> dict[str, Any]:
    """uint8 input (scale 1/256) -> DEQUANTIZE -> ADD(bias) -> probabilities, with two metadata entries."""
    parts: dict[str, Any] = {
        "tensors": [
            {
                0: ("i32s", [1, 7]),
                1: ("i8", 3),  # UINT8
                3: ("str", "input"),
                4: ("table", {2: ("f32s", [1 / 256]), 3: ("i64s", [0])}),
                7: ("i32s", [-1, 7]),
            },
            {0: ("i32s", [1, 7]), 1: ("i8", 0), 3: ("str", "dequantized"), 7: ("i32s", [-1, 7])},
            {0: ("i32s", [7]), 1: ("i8", 0), 2: ("u32", 1), 3: ("str", "bias")},
            {0: ("i32s", [1, 7]), 1: ("i8", 0), 3: ("str", "probabilities"), 7: ("i32s", [-1, 7])},
        ],
        "codes": [{0: ("i8", 6), 2: ("i32", 1), 3: ("i32", 6)}, {0: ("i8", 0), 2: ("i32", 1), 3: ("i32", 0)}],
        "operators": [
            {0: ("u32", 0), 1: ("i32s", [0]), 2: ("i32s", [1])},
            {0: ("u32", 1), 1: ("i32s", [1, 2]), 2: ("i32s", [3])},
        ],
        "buffers": [
            {},
            {0: ("u8s", np.linspace(-1, 1, 7, dtype="<f4").tobytes())},
            {0: ("u8s", b"1.14.0".ljust(16, b"\0"))},
            {0: ("u8s", b"\x00\x01\xff\xfe")},
        ],
        "metadata": [{0: ("str", "min_runtime_version"), 1: ("u32", 2)}, {0: ("str", "blob"), 1: ("u32", 3)}],
        "inputs": [0],
        "outputs": [3],
    }
    return parts


def build(parts: dict[str, Any], tail: bytes = b"") -> bytes:
    subgraph = {
        0: ("tables", parts["tensors"]),
        1: ("i32s", parts["inputs"]),
        2: ("i32s", parts["outputs"]),
        3: ("tables", parts["operators"]),
        4: ("str", "main"),
    }
    model = {
        0: ("u32", 3),
        1: ("tables", parts["codes"]),
        2: ("tables", [subgraph]),
        3: ("str", "hand-built"),
        4: ("tables", parts["buffers"]),
        6: ("tables", parts["metadata"]),
    }
    return write_flatbuffer(model, tail)


@pytest.fixture(scope="module")
def tiny_tflite() -> bytes:
    return build(tiny_model())


# ------------------------------------------------------------------------------- reference comparisons


def litert_interpreter(data: bytes) -> Any:
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    return interpreter.Interpreter(
        model_content=data,
        experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def assert_matches_litert(data: bytes) -> ModelInfo:
    info = inspect_bytes(data)
    it = litert_interpreter(data)
    ops = it._get_ops_details()
    assert [o.op for o in info.operators] == [o["op_name"] for o in ops]
    assert [o.inputs for o in info.operators] == [tuple(int(i) for i in o["inputs"]) for o in ops]
    assert [o.outputs for o in info.operators] == [tuple(int(i) for i in o["outputs"]) for o in ops]
    details = it.get_tensor_details()
    assert len(info.tensors) == len(details)
    for d in details:
        t = info.tensors[d["index"]]
        q = d["quantization_parameters"]
        assert t.name == d["name"]
        assert t.shape == tuple(int(v) for v in d["shape_signature"])
        assert np.dtype(t.dtype) == np.dtype(d["dtype"])
        assert t.scale == tuple(float(v) for v in q["scales"])
        assert t.zero_point == tuple(int(v) for v in q["zero_points"])
    assert info.input_ids == tuple(d["index"] for d in it.get_input_details())
    assert info.output_ids == tuple(d["index"] for d in it.get_output_details())
    assert [t.name for t in info.inputs] == [d["name"] for d in it.get_input_details()]
    return info


def assert_matches_onnx(data: bytes) -> ModelInfo:
    onnx = pytest.importorskip("onnx")
    numpy_helper = pytest.importorskip("onnx.numpy_helper")
    info = inspect_bytes(data)
    m = onnx.load_from_string(data)
    g = m.graph
    assert info.kind == "onnx" and info.version == m.ir_version
    assert [(o.op, o.inputs, o.outputs) for o in info.operators] == [
        (n.op_type, tuple(n.input), tuple(n.output)) for n in g.node
    ]
    assert info.metadata == {p.key: p.value for p in m.metadata_props}
    assert info.opset == tuple(f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import)
    assert info.producer == f"{m.producer_name} {m.producer_version}".strip()
    inits = {i.name: i for i in g.initializer}

    def described(v: Any) -> Tensor:
        tt = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in tt.shape.dim)
        return Tensor(v.name, dims, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name)

    assert info.inputs == tuple(described(v) for v in g.input if v.name not in inits)
    assert info.outputs == tuple(described(v) for v in g.output)
    by_name = {t.name: t for t in info.tensors}
    for name, init in inits.items():
        assert by_name[name].shape == tuple(init.dims)
        assert by_name[name].dtype == np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).name
        if int(np.prod(init.dims)) == 1 and init.data_type in (1, 10, 11) and not init.external_data:
            assert info.constants[name] == float(numpy_helper.to_array(init).reshape(-1)[0])
    return info


# ------------------------------------------------------------------------------- TFLite, hand-built


def test_tiny_tflite_described(tiny_tflite: bytes) -> None:
    info = inspect_bytes(tiny_tflite)
    assert info.kind == "tflite" and info.version == 3 and info.subgraphs == 1
    assert [(o.op, o.inputs, o.outputs) for o in info.operators] == [("DEQUANTIZE", (0,), (1,)), ("ADD", (1, 2), (3,))]
    assert info.op_counts() == {"DEQUANTIZE": 1, "ADD": 1}
    assert info.inputs == (Tensor("input", (-1, 7), "uint8", (1 / 256,), (0,)),)
    assert info.outputs == (Tensor("probabilities", (-1, 7), "float32"),)
    assert info.tensors[2] == Tensor("bias", (7,), "float32")
    assert info.metadata == {"min_runtime_version": "1.14.0", "blob": "<4 bytes>"}
    assert info.buffers_bytes == 28 + 16 + 4
    assert output_step(info) == 1 / 256
    assert info.producer == "" and info.constants == {}


def test_tiny_tflite_matches_litert(tiny_tflite: bytes) -> None:
    assert_matches_litert(tiny_tflite)  # also proves the hand-built file is a valid TFLite model


def test_tflite_custom_op_large_buffers_and_opcode_fields() -> None:
    parts = tiny_model()
    parts["codes"] = [
        {0: ("i8", 32), 1: ("str", "ethos-u"), 3: ("i32", 32)},  # CUSTOM
        {0: ("i8", 127), 3: ("i32", 150)},  # PLACEHOLDER_FOR_GREATER_OP_CODES + builtin_code
        {0: ("i8", 6)},  # an old file: deprecated_builtin_code only
        {0: ("i8", 0), 3: ("i32", 9999)},  # unknown to this table: described, not refused
    ]
    parts["operators"] = [
        {0: ("u32", 0), 1: ("i32s", [0, 2]), 2: ("i32s", [1]), 5: ("u8s", b"\x01\x02\x03")},
        {0: ("u32", 1), 1: ("i32s", [1, -1]), 2: ("i32s", [3])},
        {0: ("u32", 2), 1: ("i32s", [1]), 2: ("i32s", [3])},
        {0: ("u32", 3), 1: ("i32s", []), 2: ("i32s", [])},
    ]
    parts["buffers"][1] = {1: ("u64", 0), 2: ("u64", 1000)}  # stored after the flatbuffer, as in models > 2 GB
    parts["buffers"].append({1: ("u64", 1), 2: ("u64", 0)})  # offset 1: an empty placeholder
    end = len(build(parts))
    parts["buffers"][1][1] = ("u64", end)
    data = build(parts, tail=b"\xaa" * 1000)
    assert len(data) == end + 1000
    info = inspect_bytes(data)
    assert [o.op for o in info.operators] == ["ethos-u", _BUILTIN_OPS[150], "DEQUANTIZE", "BUILTIN_9999"]
    assert [o.custom_options_bytes for o in info.operators] == [3, 0, 0, 0]
    assert info.operators[1].inputs == (1, -1)
    assert info.buffers_bytes == 1000 + 16 + 4
    assert output_step(info) == 1 / 256  # the output comes from a DEQUANTIZE (the third operator)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p["operators"][0].update({0: ("u32", 7)}), "opcode"),
        (lambda p: p["operators"][1].update({1: ("i32s", [1, 9])}), "tensor 9"),
        (lambda p: p["operators"][1].update({1: ("i32s", [1, -2])}), "tensor -2"),
        (lambda p: p.update(inputs=[-1]), "tensor -1"),
        (lambda p: p["metadata"][0].update({1: ("u32", 99)}), "buffer 99"),
        (lambda p: p["buffers"].__setitem__(1, {1: ("u64", 2**40), 2: ("u64", 8)}), "outside"),
        (lambda p: p["operators"][0].update({9: ("u64", 2**40), 10: ("u64", 8)}), "outside"),
    ],
)
def test_tflite_bad_references(mutate: Any, message: str) -> None:
    parts = tiny_model()
    mutate(parts)
    with pytest.raises(ModelFileError, match=message):
        inspect_bytes(build(parts))


def test_tflite_shared_tables_cannot_amplify() -> None:
    """3000 tensor entries sharing one tensor with a 3000-dim shape: 9M elements from a 25 kB file."""
    parts = tiny_model()
    big = {0: ("i32s", [1] * 3000), 1: ("i8", 0), 3: ("str", "x")}
    parts["tensors"] = parts["tensors"] + [big] * 3000
    data = build(parts)
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="larger than the file"):
        inspect_bytes(data)
    assert time.perf_counter() - t0 < 1.0


def test_tflite_structural_errors(tiny_tflite: bytes) -> None:
    for bad in (b"", b"\0" * 7, b"\xff\xff\xff\x7fTFL3", tiny_tflite[:64]):
        with pytest.raises(ModelFileError):
            inspect_bytes(bad, "tflite")
    with pytest.raises(ModelFileError, match="TFL3"):
        inspect_bytes(b"\x00" * 16, "tflite")
    with pytest.raises(ModelFileError, match="no subgraphs"):
        inspect_bytes(write_flatbuffer({0: ("u32", 3)}))
    with pytest.raises(ModelFileError, match="unknown model kind"):
        inspect_bytes(tiny_tflite, "pb")


# ------------------------------------------------------------------------------- TFLite, converted by TensorFlow


@pytest.fixture(scope="module")
def converted() -> dict[str, bytes]:
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    rng = np.random.default_rng(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), batch_size=1),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(7, activation="softmax"),
        ]
    )
    out = {"float32": tf.lite.TFLiteConverter.from_keras_model(model).convert()}
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), dtype=np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8  # output stays float32: the graph ends in DEQUANTIZE
    out["uint8_float32"] = conv.convert()
    return out


def test_converted_float_matches_litert(converted: dict[str, bytes]) -> None:
    info = assert_matches_litert(converted["float32"])
    assert info.op_counts() == {"CONV_2D": 1, "MAX_POOL_2D": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert info.inputs[0].dtype == "float32" and info.buffers_bytes >= 4 * (
        9 * 4 + 4 + 36 * 7 + 7
    )  # weights and biases
    assert "min_runtime_version" in info.metadata
    assert output_step(info) == 1 / 256


def test_converted_int8_matches_litert(converted: dict[str, bytes]) -> None:
    info = assert_matches_litert(converted["uint8_float32"])
    ops = [o.op for o in info.operators]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE" and "CONV_2D" in ops
    assert info.inputs[0].dtype == "uint8" and info.outputs[0].dtype == "float32"
    deq = info.operators[-1]
    assert output_step(info) == info.tensors[deq.inputs[0]].scale[0] == 1 / 256  # int8 softmax output scale
    conv = next(o for o in info.operators if o.op == "CONV_2D")
    assert len(info.tensors[conv.inputs[1]].scale) == 4  # per-channel weights


# ------------------------------------------------------------------------------- ONNX


def test_shipped_onnx_matches_onnx() -> None:
    info = assert_matches_onnx(SHIPPED_ONNX.read_bytes())
    assert info.inputs[0].shape == ("N", 48, 48, 1) and info.outputs[0].shape == ("N", 7)
    assert info.operators[-1].op == "Softmax"
    assert output_step(info) == 1 / 256


def test_shipped_onnx_without_onnx() -> None:
    info = inspect_file(SHIPPED_ONNX)
    assert info.kind == "onnx" and info.opset[0].startswith("ai.onnx:")
    assert info.inputs[0].dtype == info.outputs[0].dtype == "float32"
    assert len(info.operators) > 5 and info.metadata


def qdq_model(scale_as: str = "initializer", ir_version: int = 8) -> bytes:
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    TP = onnx.TensorProto
    inits = [h.make_tensor("s", TP.FLOAT, [], [1 / 255]), h.make_tensor("z", TP.UINT8, [], [0])]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])]
    if scale_as == "initializer":
        inits.append(h.make_tensor("s2", TP.FLOAT, [], [1 / 255]))
    elif scale_as == "float16":
        inits.append(h.make_tensor("s2", TP.FLOAT16, [], [1 / 255]))
    elif scale_as == "raw":
        inits.append(h.make_tensor("s2", TP.FLOAT, [1], np.float32([0.125]).tobytes(), raw=True))
    elif scale_as == "constant":
        nodes.insert(0, h.make_node("Constant", [], ["s2"], value=h.make_tensor("v", TP.FLOAT, [], [0.25])))
    elif scale_as == "value_float":
        nodes.insert(0, h.make_node("Constant", [], ["s2"], value_float=0.5))
    elif scale_as == "external":
        t = h.make_tensor("s2", TP.FLOAT, [], [1 / 255])
        t.ClearField("float_data")
        t.data_location = TP.EXTERNAL
        t.external_data.add(key="location", value="elsewhere.bin")
        inits.append(t)
    nodes.append(h.make_node("DequantizeLinear", ["q", "s2", "z"], ["probabilities"]))
    x = h.make_tensor_value_info("x", TP.FLOAT, ["N", 7])
    x.type.tensor_type.shape.dim.add()  # a dim with neither value nor param
    inputs = [x] + ([h.make_tensor_value_info("s", TP.FLOAT, [])] if ir_version < 4 else [])
    graph = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info("probabilities", TP.FLOAT, ["N", 7])], inits)
    model = h.make_model(graph, producer_name="test", producer_version="1", opset_imports=[h.make_opsetid("", 19)])
    model.ir_version = ir_version
    h.set_model_props(model, {"labels": "a,b", "empty": ""})
    return model.SerializeToString()


@pytest.mark.parametrize(
    "scale_as, step",
    [
        ("initializer", float(np.float32(1 / 255))),
        ("float16", float(np.float16(1 / 255))),
        ("raw", 0.125),
        ("constant", 0.25),
        ("value_float", 0.5),
        ("external", 1 / 256),  # external data is never followed
    ],
)
def test_onnx_output_step(scale_as: str, step: float) -> None:
    info = assert_matches_onnx(qdq_model(scale_as))
    assert output_step(info) == step
    assert info.inputs[0].shape == ("N", 7, "?")
    assert info.metadata == {"labels": "a,b", "empty": ""} and info.producer == "test 1"
    assert info.opset == ("ai.onnx:19",)


def test_onnx_ir3_initializer_inputs_are_not_inputs() -> None:
    info = assert_matches_onnx(qdq_model(ir_version=3))
    assert [t.name for t in info.inputs] == ["x"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no ir_version or no graph"),
        (b"\x08\x08", "no ir_version or no graph"),  # ir_version only
        (b"\x08" + b"\xff" * 11, "varint longer"),
        (b"\x3a\x05ab", "claims 5 bytes"),  # graph field cut short
        (b"\x0b", "wire type 3"),
        (b"\x00\x00", "field number 0"),
        (b"\x0a\x01x", "should be an integer"),  # ir_version as bytes
        (b"\x08\x08\x3a\x02\x08\x01", "should be length-delimited"),  # graph.node as varint
        (b"\x08\x08\x3a\x05\x0a\x03\x0a\x05a", "claims 5 bytes"),  # node.input longer than node
    ],
)
def test_onnx_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        inspect_bytes(data)


# ------------------------------------------------------------------------------- files


def test_inspect_file_refusals(tmp_path: Path, tiny_tflite: bytes) -> None:
    with pytest.raises(ModelFileError, match="not a regular file"):
        inspect_file(tmp_path)
    with pytest.raises(ModelFileError, match="cannot read"):
        inspect_file(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="limit"):
        inspect_file(SHIPPED_ONNX, max_bytes=1000)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.tflite"
        os.mkfifo(fifo)
        with pytest.raises(ModelFileError, match="not a regular file"):
            inspect_file(fifo)  # refused before open(): would block otherwise
    misnamed = tmp_path / "model.onnx"
    misnamed.write_bytes(tiny_tflite)
    assert inspect_file(misnamed).kind == "tflite"  # sniffed from the bytes, not the name
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x0b" * 10)
    with pytest.raises(ModelFileError, match=r"garbage\.onnx: ONNX"):
        inspect_file(garbage)


# ------------------------------------------------------------------------------- robustness


def mutants(data: bytes, count: int, seed: int, hot: int) -> list[bytes]:
    """Byte flips, overwrites, insertions and truncations; half aimed at the first/last ``hot`` bytes."""
    rng = random.Random(seed)
    out = []
    n = len(data)
    for _ in range(count):
        b = bytearray(data)

        def spot() -> int:
            if rng.random() < 0.5:
                return rng.randrange(n)
            k = rng.randrange(min(hot, n))
            return k if rng.random() < 0.5 else n - 1 - k

        action = rng.random()
        if action < 0.15:
            del b[rng.randrange(n) if rng.random() < 0.5 else spot() :]
        else:
            for _ in range(rng.randint(1, 8)):
                p = spot()
                if action < 0.6:
                    b[p] ^= 1 << rng.randrange(8)
                elif action < 0.85:
                    b[p] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
                else:
                    b[p:p] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("which", ["tflite", "onnx"])
def test_mutations_only_raise_model_file_error(which: str, tiny_tflite: bytes) -> None:
    data = tiny_tflite if which == "tflite" else SHIPPED_ONNX.read_bytes()
    outcomes = {"ok": 0, "refused": 0}
    for k, mutant in enumerate(mutants(data, 300, seed=1234, hot=4096)):
        t0 = time.perf_counter()
        try:
            inspect_bytes(mutant)
            outcomes["ok"] += 1
        except ModelFileError as exc:
            assert "unexpected" not in str(exc), f"mutant {k}: the safety net caught {exc}"
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        assert time.perf_counter() - t0 < 1.0, f"mutant {k} took too long"
    assert outcomes["refused"] > 30, outcomes  # the mutations do hit structure
