"""Install trained weights as the package default.

    python scripts/ship_weights.py TRAINED_DIR [--data FER2013]

Copies TRAINED_DIR/emotion_weights.npz and its manifest.json into xruntime_emotion/weights/,
exports emotion_float32.onnx from them (tf2onnx, validated), scores that ONNX on every split with
onnxruntime, and records its sha256 and figures in the shipped manifest.

A candidate trained with ``--hold-out-private`` has never been scored on PrivateTest; its one look
happens here (Keras, batch 256, as ``train`` scores), recorded as such in the manifest's accuracy.
Weights fine-tuned (``train --init``) from the weights shipped now keep those weights' record (recipe,
seed, accuracy, CPU hours) in the manifest's ``init.base``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from exporters.context import ExportContext, ExportOptions
from exporters.pipeline import export
from exporters.train import score
from xruntime_emotion.model.data import Split, load_fer2013, to_input
from xruntime_emotion.model.ir import ModelIR
from xruntime_emotion.runtime.backends import open_backend, predict_batched
from xruntime_emotion.util import sha256_file
from xruntime_emotion.weights import DEFAULT_ONNX, DEFAULT_WEIGHTS, MANIFEST

DEST = Path(__file__).resolve().parents[1] / "xruntime_emotion" / "weights"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trained", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    manifest = json.loads((args.trained / "manifest.json").read_text())
    ir = ModelIR.from_npz(args.trained / DEFAULT_WEIGHTS)
    if ir.weights_sha256 != manifest["weights"]["weights_sha256"]:
        raise SystemExit("weights do not match their manifest")
    data = load_fer2013(args.data)
    private = manifest["accuracy"]["PrivateTest"]
    if private.get("scored") is False:  # the candidate's first and only look at PrivateTest
        from exporters.keras_builder import build_model
        from exporters.train import predict_keras

        x, y = data.split(Split.PRIVATE_TEST)
        private = score(predict_keras(build_model(ir), to_input(x)).argmax(1), y)
        private["scored"] = "once, by scripts/ship_weights.py, after the weights were chosen on PublicTest"
        manifest["accuracy"]["PrivateTest"] = private
        print(f"PrivateTest (first look): {private['correct']}/{len(y)} = {private['accuracy']:.4f}", file=sys.stderr)
    init = manifest.get("init")
    if init and (DEST / MANIFEST).is_file():  # fine-tuned from the weights shipped now: keep their record
        base = json.loads((DEST / MANIFEST).read_text())
        if base["weights"]["weights_sha256"] == init["weights_sha256"]:
            keep = ("weights", "seed", "epochs", "best_epoch", "recipe", "accuracy", "cpu_hours", "train_seconds")
            init["base"] = {k: base[k] for k in keep if k in base}
    shutil.copyfile(args.trained / DEFAULT_WEIGHTS, DEST / DEFAULT_WEIGHTS)
    export(ExportContext(ir, ExportOptions(onnx_via="tf2onnx")), ["onnx"], DEST)
    (DEST / "export_manifest.json").unlink()
    backend = open_backend(DEST / DEFAULT_ONNX, "onnxruntime")
    scores = {}
    for s in Split:
        x, y = data.split(s)
        scores[s.value] = score(predict_batched(backend, to_input(x)).argmax(1), y)
    manifest["shipped"] = {
        "weights": DEFAULT_WEIGHTS,
        "weights_file_sha256": sha256_file(DEST / DEFAULT_WEIGHTS),
        "onnx": DEFAULT_ONNX,
        "onnx_sha256": sha256_file(DEST / DEFAULT_ONNX),
        "onnx_producer": "tf2onnx",
        "onnx_accuracy": {"runtime": "onnxruntime", "batch_size": 256, **scores},
    }
    (DEST / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest["accuracy"], indent=1))
    print(json.dumps(manifest["shipped"], indent=1))


if __name__ == "__main__":
    main()
