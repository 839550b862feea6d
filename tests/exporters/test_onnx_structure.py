"""The tf2onnx fp32 graph has one exact node list: no Shape-computed Reshape target may be left in it.

tf2onnx 1.17 now and then (1 in 7 to 1 in 60 fresh-process exports) left Flatten's Shape/Gather/Cast/Slice/Concat/Cast
subgraph in place; ``exporters.onnx_tf2onnx.stable_transpose_optimizer`` removes the cause.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
onnx = pytest.importorskip("onnx")

from exporters.context import ExportContext, ExportOptions  # noqa: E402
from exporters.onnx_tf2onnx import model_proto, stable_transpose_optimizer  # noqa: E402
from xruntime_emotion.model.ir import ModelIR  # noqa: E402

EXPECTED = [
    "Reshape",  # NHWC -> NCHW of the 1-channel input
    *["Conv", "Relu", "MaxPool"],
    *["Conv", "Relu", "Conv", "Relu", "AveragePool"],
    *["Conv", "Relu", "Conv", "Relu", "AveragePool"],
    "Reshape",  # Flatten, with a constant [-1, 128] target
    *["MatMul", "Add", "Relu", "MatMul", "Add", "Relu", "MatMul", "Add", "Softmax"],
]
SHAPE_OPS = {"Shape", "Gather", "Cast", "Slice", "Concat"}


def structure_problems(graph: Any) -> list[str]:
    """Why ``graph`` is not the expected fp32 graph (empty when it is)."""
    problems = []
    ops = [n.op_type for n in graph.node]
    if ops != EXPECTED:
        problems.append(f"{len(ops)} nodes {ops}, expected {len(EXPECTED)}")
    problems += [f"leftover {n.op_type} {n.name}" for n in graph.node if n.op_type in SHAPE_OPS]
    consts = {t.name for t in graph.initializer}
    reshapes = [n for n in graph.node if n.op_type == "Reshape"]
    problems += [f"{n.name}: computed target {n.input[1]}" for n in reshapes if n.input[1] not in consts]
    return problems


@pytest.fixture(scope="module")
def fp32() -> Any:
    return model_proto(ExportContext(ModelIR.default(), ExportOptions(onnx_via="tf2onnx")))


def test_fp32_graph_has_the_exact_node_list(fp32: Any) -> None:
    assert structure_problems(fp32.graph) == []


def with_leftover_subgraph(model: Any) -> Any:
    """``model`` with Flatten's target computed as tf2onnx leaves it on a bad run: Shape -> Gather(perm) ->
    Cast -> Slice(batch) -> Concat(128) -> Cast. Same outputs, different graph."""
    h = onnx.helper
    bad = onnx.ModelProto()
    bad.CopyFrom(model)
    g = bad.graph
    pooled = {o for n in g.node if n.op_type == "AveragePool" for o in n.output}
    flatten = next(n for n in g.node if n.op_type == "Reshape" and n.input[0] in pooled)
    g.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array(v, dtype), name)
            for name, v, dtype in [
                ("t_perm", [0, 2, 3, 1], np.int64),
                ("t_zero", [0], np.int64),
                ("t_one", [1], np.int64),
                ("t_rest", [128], np.int32),
            ]
        ]
    )
    chain = [
        h.make_node("Shape", [flatten.input[0]], ["t_shape"], name="Shape__1"),
        h.make_node("Gather", ["t_shape", "t_perm"], ["t_nhwc"], name="Gather__2"),
        h.make_node("Cast", ["t_nhwc"], ["t_i32"], name="Cast__3", to=onnx.TensorProto.INT32),
        h.make_node("Slice", ["t_i32", "t_zero", "t_one", "t_zero"], ["t_batch"], name="Slice__4"),
        h.make_node("Concat", ["t_batch", "t_rest"], ["t_target"], name="Concat__5", axis=0),
        h.make_node("Cast", ["t_target"], ["t_i64"], name="Cast__6", to=onnx.TensorProto.INT64),
    ]
    flatten.input[1] = "t_i64"
    at = list(g.node).index(flatten)
    nodes = [*g.node[:at], *chain, *g.node[at:]]
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(bad)
    return bad


def test_a_leftover_shape_subgraph_is_rejected(fp32: Any) -> None:
    bad = with_leftover_subgraph(fp32)
    problems = structure_problems(bad.graph)
    assert len(bad.graph.node) == len(EXPECTED) + 6
    assert any(p.startswith("30 nodes") for p in problems)
    assert {p.split()[1] for p in problems if p.startswith("leftover")} == SHAPE_OPS
    assert any("computed target t_i64" in p for p in problems)
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).random((3, 48, 48, 1), np.float32)
    run = [ort.InferenceSession(m.SerializeToString()).run(None, {"input": x})[0] for m in (fp32, bad)]
    np.testing.assert_array_equal(run[0], run[1])  # same outputs: only the structure check tells them apart


def _two_transposes() -> Any:
    """Two Transposes that only move a size-1 dim, next to each other in the node list."""
    from onnx import TensorProto
    from tf2onnx.graph import Graph

    g = Graph([], output_shapes={}, dtypes={}, opset=17)
    for name in ("a", "b"):
        g.add_graph_input(name, TensorProto.FLOAT, [-1, 1, 4, 4])
    for name in ("a", "b"):
        t = g.make_node("Transpose", [name], attr={"perm": [0, 2, 3, 1]}, shapes=[[-1, 4, 4, 1]], dtypes=[1])
        g.add_graph_output(t.output[0], TensorProto.FLOAT, [-1, 4, 4, 1])
    return g


def _left_after_post_optimize(cls: Any) -> list[str]:
    opt = cls()
    opt._g = _two_transposes()
    opt.post_optimize_action()
    return [n.type for n in opt._g.get_nodes() if n.type in ("Transpose", "Reshape")]


def test_stable_transpose_optimizer_replaces_every_transpose() -> None:
    from tf2onnx import optimizer
    from tf2onnx.optimizer.transpose_optimizer import TransposeOptimizer

    if _left_after_post_optimize(TransposeOptimizer) == ["Reshape", "Reshape"]:
        pytest.skip("this tf2onnx no longer skips nodes in post_optimize_action: stable_transpose_optimizer can go")
    assert _left_after_post_optimize(TransposeOptimizer) == ["Transpose", "Reshape"]  # the bug: b is skipped
    with stable_transpose_optimizer():
        assert _left_after_post_optimize(optimizer._optimizers["optimize_transpose"]) == ["Reshape", "Reshape"]
    assert optimizer._optimizers["optimize_transpose"] is TransposeOptimizer  # restored
