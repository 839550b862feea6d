"""What every artifact says about itself (ONNX metadata_props, export manifests)."""

from __future__ import annotations

import json

from xruntime_emotion._version import __version__
from xruntime_emotion.model.ir import ModelIR


def artifact_metadata(ir: ModelIR, producer: str) -> dict[str, str]:
    c = ir.contract
    return {
        "xemotion_version": __version__,
        "model": "deepface-emotion",
        "labels": json.dumps(list(ir.labels)),
        "input_scaling": json.dumps(
            {
                "layout": c.layout,
                "shape": list(c.shape),
                "dtype": c.dtype,
                "scale": c.scale_text,
                "range": list(c.value_range),
                "color": c.color,
            }
        ),
        "weights_sha256": ir.weights_sha256,
        "ir_hash": ir.ir_hash,
        "producer": producer,
    }
