"""ONNX via tf2onnx.convert.from_function (from_keras fails on Keras 3 models)."""

from __future__ import annotations

import re
from typing import Any
from unittest import mock

from xruntime_emotion.errors import ExportError
from xruntime_emotion.model.onnx_ir import finish

from ._deps import tf, tf2onnx
from .context import ExportContext

PRODUCER = "tf2onnx"


def model_proto(ctx: ExportContext) -> Any:
    t, convert = tf(), tf2onnx()
    model = ctx.keras_model(ctx.options.fixed_batch)
    spec = (t.TensorSpec((ctx.options.fixed_batch, *ctx.ir.contract.shape), t.float32, name="input"),)

    @t.function(input_signature=spec)
    def fn(x: Any) -> dict[str, Any]:
        return {"probabilities": model(x, training=False)}

    with stable_transpose_optimizer():
        proto, _ = convert.convert.from_function(fn, input_signature=spec, opset=ctx.options.opset)
    for value in (*proto.graph.input, *proto.graph.output):  # tf2onnx names the batch dim unk__NN
        dim = value.type.tensor_type.shape.dim[0]
        if dim.dim_param:
            dim.dim_param = "N"
    _canonical_names(proto.graph)
    return finish(proto, ctx.ir, PRODUCER)


def stable_transpose_optimizer() -> Any:
    """A context in which tf2onnx's TransposeOptimizer replaces every size-1-dim Transpose in one round.

    tf2onnx 1.17's ``post_optimize_action`` replaces such Transposes by Reshapes while iterating the graph's
    live node list; ``remove_node`` deletes from that list, so the node after each replaced one is skipped.
    The list order differs between runs (PYTHONHASHSEED alone does not fix it). When the input Transpose
    (C=1) sits just before the one feeding Flatten's Reshape, the latter is replaced a round later and merged
    into that Reshape only after the reshape optimizer's last run, so Flatten's Shape/Gather/Cast/Slice/Concat
    target stays in the graph. Iterating a snapshot of the list gives the usual graph every time. The patch
    of tf2onnx's optimizer table is process-wide while the context is active.
    """
    from tf2onnx import optimizer
    from tf2onnx.optimizer.transpose_optimizer import TransposeOptimizer

    if optimizer._optimizers.get("optimize_transpose") is not TransposeOptimizer:
        raise ExportError(
            "tf2onnx's optimizer table changed: re-check exporters.onnx_tf2onnx.stable_transpose_optimizer"
        )

    class SnapshotTransposeOptimizer(TransposeOptimizer):  # type: ignore[misc]
        _snapshot = False

        @property
        def nodes(self) -> list[Any]:
            nodes = self._g.get_nodes()
            return list(nodes) if self._snapshot else nodes

        def post_optimize_action(self) -> None:
            self._snapshot = True
            try:
                super().post_optimize_action()
            finally:
                self._snapshot = False

    return mock.patch.dict(optimizer._optimizers, optimize_transpose=SnapshotTransposeOptimizer)


_COUNTER = re.compile(r"__(\d+)")


def _canonical_names(graph: Any) -> None:
    """Renumber the ``__N`` suffixes tf2onnx gives the names it makes, in order of appearance.

    tf2onnx numbers them from a process-wide counter whose value at conversion time varies between
    processes (``new_shape__58`` in one, ``new_shape__59`` in another); renumbered, two processes
    export byte-identical files. The map is one-to-one, so names stay unique.
    """
    numbers: dict[str, str] = {}

    def rename(name: str) -> str:
        return _COUNTER.sub(lambda m: "__" + numbers.setdefault(m.group(1), str(len(numbers))), name)

    for node in graph.node:
        node.name = rename(node.name)
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    for t in graph.initializer:
        t.name = rename(t.name)
    for v in (*graph.input, *graph.output, *graph.value_info):
        v.name = rename(v.name)


def export(ctx: ExportContext) -> bytes:
    return bytes(model_proto(ctx).SerializeToString())
