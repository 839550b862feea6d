"""`verify`: run every (format, runtime) pair on the golden set and judge it by the golden tolerances.

The matrix is data (``MATRIX``); the CLI and the pytest conformance tests both iterate over it.
A pair whose runtime or artifact is missing is *skipped* with the reason and install hint, never passed;
a folder with no artifact xemotion knows, or without a format asked for, is an error, not a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import golden as G
from .data import to_input
from .errors import ConformanceError, MissingDependencyError, ModelFileError
from .fidelity import Int8Rule, judge_int8
from .formats import FORMATS, IR_ONNX_FILENAME, Precision, get_format, get_target
from .integrity import EXPORT_MANIFEST, entries, read_manifest
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


def asked_formats(target: str | None = None, formats: list[str] | None = None) -> list[str]:
    """The formats ``--format`` and ``--target`` ask for (each must then be in the folder)."""
    asked = [get_format(f).name for f in formats or []]
    if target:
        asked += [f for f in get_target(target).formats if f not in asked]
    return asked


def matrix(target: str | None = None, delegate: str | None = None, formats: list[str] | None = None) -> list[Pair]:
    pairs = list(MATRIX)
    asked = asked_formats(target, formats)
    if asked:
        pairs = [p for p in pairs if p.format in asked or (p.format == "keras" and not formats)]
    if target:
        t = get_target(target)
        if t.delegate:
            pairs.append(Pair(t.format, t.runtime, delegate or t.delegate))
    elif delegate:
        pairs.append(Pair("tflite-int8", "tflite_runtime", delegate))
    return pairs


def known_files() -> dict[str, str]:
    """Artifact file name -> format, for every format `export` writes (and the IR-made ONNX)."""
    return {**{f.filename: f.name for f in FORMATS.values() if f.name != "keras"}, IR_ONNX_FILENAME: "onnx-ir"}


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
        if not per_case.max() <= lim:
            failures.append(f"max |diff| {per_case.max():.3g} > {lim} on case {names[worst]}")
    else:
        rule = Int8Rule.from_json(tol["int8_vs_fp32"])
        real_names = [n for n, r in zip(names, real) if r]
        fidelity, why = judge_int8(fp32[real], got[real], rule, real_names)
        checks.update({f"real_{k}": v for k, v in fidelity.items()})
        failures += [f"{w} on real faces" for w in why]
        if G.HAPPY in names:
            checks["happy_label"] = LABELS[int(got[names.index(G.HAPPY)].argmax())]
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
            if not steps[best].max() <= limit + 1e-3:
                failures.append(
                    f"{steps[best].max():.2f} output steps from the closest recorded int8 outputs ({best}; "
                    f"> {limit}) on case {names[s]}"
                )
        else:
            failures.append(f"no recorded int8 expectations for {pair.format}; regenerate the golden set")
    reference[pair.format] = got
    status = "failed" if failures else "passed"
    return PairResult(pair.id, pair.format, pair.runtime, status, "; ".join(failures), checks)


def _preflight(artifacts: Path, asked: list[str], weights: str) -> dict[str, str]:
    """Fail early, in one line, on a folder verify cannot judge; the export manifest's sha256 by file name."""
    if not artifacts.is_dir():
        raise ConformanceError(f"{artifacts}: no such folder; make the artifacts with `xemotion export --all -o DIR`")
    known = known_files()
    present = sorted(f for f in known if (artifacts / f).is_file())
    if not present:
        raise ConformanceError(
            f"{artifacts} holds no artifact xemotion knows ({', '.join(sorted(known))}); "
            f"make them with `xemotion export --all -o {artifacts}`"
        )
    missing = [f for f in asked if not (artifacts / FORMATS[f].filename).is_file()]
    if missing:
        raise ConformanceError(
            f"{artifacts} lacks {', '.join(FORMATS[f].filename for f in missing)}; make it with "
            f"`xemotion export {' '.join('--format ' + f for f in missing)} -o {artifacts}`"
        )
    if not (artifacts / EXPORT_MANIFEST).is_file():
        return {}
    m = read_manifest(artifacts / EXPORT_MANIFEST)
    if m.get("weights_sha256") != weights:
        raise ConformanceError(
            f"{artifacts} holds artifacts of weights {str(m.get('weights_sha256', '?'))[:12]}…, the golden set is "
            f"for {weights[:12]}…; export them from the golden weights or regenerate the goldens"
        )
    return {file: sha for file, sha, _ in entries(artifacts).values()}


def verify(
    artifacts: Path,
    *,
    target: str | None = None,
    delegate: str | None = None,
    formats: list[str] | None = None,
    golden_directory: Path | None = None,
) -> dict[str, Any]:
    """Every pair of the matrix on the golden set; a report whose ``passed`` is False on any failure."""
    artifacts = Path(artifacts)
    gs = G.load(golden_directory)
    weights = gs.manifest["weights_sha256"]
    recorded_sha = _preflight(artifacts, asked_formats(target, formats), weights)
    cases, imgs = gs.images()
    x = to_input(imgs)
    results: list[PairResult] = []
    outputs: dict[str, np.ndarray] = {}
    pairs = matrix(target, delegate, formats)
    for pair in pairs:
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
        if path.name in recorded_sha and sha256_file(path) != recorded_sha[path.name]:
            why = f"{path.name}: sha256 differs from {EXPORT_MANIFEST} (replaced or corrupt file)"
            results.append(PairResult(pair.id, pair.format, pair.runtime, "failed", why))
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
    vela = artifacts / FORMATS["vela"].filename
    if vela.is_file() and not any(p.format == "vela" for p in pairs):
        results.append(PairResult(
            "vela × Ethos-U NPU", "vela", "tflite_runtime", "skipped",
            "needs the NPU: run `xemotion verify --target imx93` on an i.MX 93 board",
        ))  # fmt: skip
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
    ran = [r for r in results if r.status != "skipped"]
    summary = {
        "passed": sum(r.status == "passed" for r in results),
        "failed": len(failed),
        "skipped": sum(r.status == "skipped" for r in results),
        "cases": len(cases),
        "real_faces": int(G.real_faces(cases).sum()),
        "checked": sum(int(r.checks.get("cases", 0)) for r in ran),
    }
    return {
        "golden": {
            "weights_sha256": weights,
            "cases": len(cases),
            "directory": str(golden_directory or G.golden_dir()),
        },
        "artifacts": str(artifacts),
        "passed": not failed and summary["passed"] > 0,
        "failed": failed,
        "summary": summary,
        "results": [asdict(r) for r in results],
    }
