"""`verify`: run every (format, runtime) pair on the golden set and judge it by the golden tolerances.

The matrix is data (``MATRIX``); the CLI and the pytest conformance tests both iterate over it.
A pair whose runtime or artifact is missing is *skipped* with the reason and install hint, never passed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import golden as G
from .data import FerData, to_input
from .errors import ConformanceError, MissingDependencyError, ModelFileError
from .formats import FORMATS, IR_ONNX_FILENAME, Precision, get_target
from .ir import LABELS, sha256_file
from .runtimes import RUNTIMES, predict_batched


@dataclass(frozen=True)
class Pair:
    format: str  # a FORMATS key, or "onnx-ir" (the IR-emitted ONNX)
    runtime: str
    delegate: str | None = None

    @property
    def id(self) -> str:
        return f"{self.format} × {self.runtime}" + (f" + {Path(self.delegate).name}" if self.delegate else "")

    @property
    def precision(self) -> Precision:
        return FORMATS[self.format if self.format in FORMATS else "onnx"].precision


MATRIX: tuple[Pair, ...] = (
    Pair("keras", "keras"),
    Pair("onnx", "onnxruntime"),
    Pair("onnx-ir", "onnxruntime"),
    Pair("onnx-int8", "onnxruntime"),
    Pair("tflite-fp32", "litert"),
    Pair("tflite-int8", "litert"),
    Pair("tflite-int8", "litert-builtin"),
    Pair("tflite-fp32", "tflite_runtime"),
    Pair("tflite-int8", "tflite_runtime"),
)


def artifact_path(pair: Pair, artifacts: Path) -> Path:
    if pair.format == "keras":
        from .weights import default_weights_path

        return default_weights_path()
    if pair.format == "onnx-ir":
        return artifacts / IR_ONNX_FILENAME
    return artifacts / FORMATS[pair.format].filename


def matrix(target: str | None = None, delegate: str | None = None) -> list[Pair]:
    pairs = list(MATRIX)
    if target:
        t = get_target(target)
        pairs = [p for p in pairs if p.format in t.formats or (p.format == "keras")]
        if t.delegate:
            pairs.append(Pair(t.format, t.runtime, delegate or t.delegate))
    elif delegate:
        pairs.append(Pair("tflite-int8", "tflite_runtime", delegate))
    return pairs


@dataclass
class PairResult:
    pair: str
    format: str
    runtime: str
    status: str  # passed | failed | skipped
    reason: str = ""
    checks: dict[str, Any] = field(default_factory=dict)


def output_step(path: Path) -> float:
    """One quantization step of the artifact's probabilities before the final dequantization."""
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(path))
        inits = {i.name: i for i in proto.graph.initializer}
        node = next(n for n in proto.graph.node if "probabilities" in n.output)
        if node.op_type == "DequantizeLinear":
            return float(numpy_helper.to_array(inits[node.input[1]]))
        return 1.0 / 256
    from .runtimes import open_backend

    b = open_backend(path)
    interp = b._interpreter()  # type: ignore[attr-defined]
    out_index = b.output["index"]  # type: ignore[attr-defined]
    details = {t["index"]: t for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():
        if out_index in op["outputs"]:
            scale = details[int(op["inputs"][0])]["quantization"][0]
            return float(scale) if scale else 1.0 / 256
    return 1.0 / 256


def _judge(
    pair: Pair, got: np.ndarray, gs: G.GoldenSet, cases: list[G.Case], path: Path, reference: dict[str, np.ndarray]
) -> PairResult:
    tol = gs.manifest["tolerances"]
    fp32 = gs.rows("fp32", cases)
    names = [c.name for c in cases]
    real = G.real_faces(cases)
    diff = np.abs(got - fp32)
    per_case = diff.max(1)
    worst = int(per_case.argmax())
    checks: dict[str, Any] = {
        "cases": len(cases),
        "real_faces": int(real.sum()),
        "max_abs_diff": float(per_case.max()),
        "worst_case": names[worst],
        "argmax_agreement": float((got.argmax(1) == fp32.argmax(1)).mean()),
        "artifact_sha256": sha256_file(path),
    }
    failures: list[str] = []
    if pair.precision is Precision.FP32:
        lim = tol["fp32"]["max_abs"]
        if per_case.max() > lim:
            failures.append(f"max |diff| {per_case.max():.3g} > {lim} on case {names[worst]}")
    else:
        t8 = tol["int8_vs_fp32"]
        if real.any():
            agree = float((got[real].argmax(1) == fp32[real].argmax(1)).mean())
            dp = diff[real].max(1)
            w = int(np.flatnonzero(real)[dp.argmax()])
            checks.update(real_argmax_agreement=agree, real_max_abs_dp=float(dp.max()), real_worst_case=names[w])
            if agree < t8["min_argmax_agreement"]:
                failures.append(f"argmax agreement with fp32 {agree:.4f} < {t8['min_argmax_agreement']} on real faces")
            if dp.max() > t8["max_abs_dp"]:
                failures.append(f"max |dp| {dp.max():.3f} > {t8['max_abs_dp']} on case {names[w]}")
            if G.HAPPY in names:
                i = names.index(G.HAPPY)
                happy = LABELS[int(got[i].argmax())]
                checks["happy_label"] = happy
                if got[i].argmax() != fp32[i].argmax():
                    failures.append(f"case {G.HAPPY}: {happy}, fp32 says {LABELS[int(fp32[i].argmax())]}")
        recorded = G.recordings(gs, pair.format)
        if recorded:
            step = float(gs.manifest["int8"][pair.format]["step"])
            limit = tol["int8_vs_self"]["max_steps"]
            steps = {rt: np.abs(got - gs.rows(G.int8_key(pair.format, rt), cases)).max(1) / step for rt in recorded}
            best = min(steps, key=lambda rt: float(steps[rt].max()))  # the kernel set this runtime matches
            s = int(steps[best].argmax())
            checks.update(
                max_steps_vs_recorded=float(np.round(steps[best].max(), 3)),
                recording=best,
                steps_worst_case=names[s],
                step=step,
                max_steps_by_recording={rt: float(np.round(v.max(), 3)) for rt, v in steps.items()},
            )
            if steps[best].max() > limit + 1e-3:
                failures.append(
                    f"{steps[best].max():.2f} output steps from the closest recorded int8 outputs ({best}; "
                    f"> {limit}) on case {names[s]}"
                )
        else:
            failures.append(f"no recorded int8 expectations for {pair.format}; regenerate the golden set")
    reference[pair.format] = got
    status = "failed" if failures else "passed"
    return PairResult(pair.id, pair.format, pair.runtime, status, "; ".join(failures), checks)


def verify(
    artifacts: Path,
    *,
    target: str | None = None,
    delegate: str | None = None,
    data: FerData | None = None,
    golden_directory: Path | None = None,
) -> dict[str, Any]:
    gs = G.load(golden_directory)
    cases, imgs, notes = gs.images(data)
    x = to_input(imgs)
    results: list[PairResult] = []
    outputs: dict[str, np.ndarray] = {}
    weights = gs.manifest["weights_sha256"]
    exp_manifest = artifacts / "export_manifest.json"
    if exp_manifest.is_file():
        m = json.loads(exp_manifest.read_text())
        if m.get("weights_sha256") != weights:
            raise ConformanceError(
                f"{artifacts} holds artifacts of weights {m.get('weights_sha256', '?')[:12]}…, the golden set is for "
                f"{weights[:12]}…; export them from the golden weights or regenerate the goldens"
            )
    for pair in matrix(target, delegate):
        spec = RUNTIMES[pair.runtime]
        path = artifact_path(pair, artifacts)
        if not spec.available():
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", f"not installed: {spec.hint()}"))
            continue
        if not path.is_file():
            hint = (
                f"xemotion export --format {pair.format} -o {artifacts}"
                if pair.format in FORMATS
                else (f"xemotion export --format onnx --via ir -o {artifacts}")
            )
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", f"no {path.name}: {hint}"))
            continue
        try:
            options = {"delegate": pair.delegate} if pair.delegate else {}
            backend = spec.open(path, **options)
            got = predict_batched(backend, x).astype(np.float64)
        except MissingDependencyError as exc:
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", str(exc)))
            continue
        except ModelFileError as exc:
            results.append(PairResult(pair.id, pair.format, pair.runtime, "failed", str(exc)))
            continue
        results.append(_judge(pair, got, gs, cases, path, outputs))
    if "onnx" in outputs and "onnx-ir" in outputs:
        d = np.abs(outputs["onnx"] - outputs["onnx-ir"]).max(1)
        lim = gs.manifest["tolerances"]["cross_producer"]["max_abs"]
        w = int(d.argmax())
        results.append(PairResult(
            "onnx (tf2onnx) vs onnx (ir)", "onnx", "onnxruntime", "passed" if d.max() <= lim else "failed",
            "" if d.max() <= lim else f"producers differ by {d.max():.3g} > {lim} on case {cases[w].name}",
            {"max_abs_diff": float(d.max()), "worst_case": cases[w].name, "cases": len(cases)},
        ))  # fmt: skip
    failed = [r.pair for r in results if r.status == "failed"]
    return {
        "golden": {"weights_sha256": weights, "cases": len(cases), "notes": notes},
        "artifacts": str(artifacts),
        "passed": not failed and any(r.status == "passed" for r in results),
        "failed": failed,
        "results": [asdict(r) for r in results],
    }
