"""`verify`: run every (format, runtime) pair on the golden set and judge it by the golden tolerances.

The matrix is data (``MATRIX``); the CLI and the pytest conformance tests both iterate over it.
A pair whose runtime or artifact is missing is *skipped* with the reason and install hint, never passed;
a folder with no artifact xemotion knows, or without a format asked for, is an error, not a pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xruntime_emotion.check import detector_golden
from xruntime_emotion.check import golden as G
from xruntime_emotion.check.fidelity import Int8Rule, judge_int8
from xruntime_emotion.errors import ConformanceError, MissingDependencyError, ModelFileError
from xruntime_emotion.model.catalog import FORMATS, TARGETS, Precision, by_filename, get_format, get_target
from xruntime_emotion.model.data import to_input
from xruntime_emotion.model.ir import LABELS
from xruntime_emotion.runtime.backends import RUNTIMES, open_backend, predict_batched
from xruntime_emotion.runtime.detect import DETECTORS, build_detector
from xruntime_emotion.runtime.integrity import EXPORT_MANIFEST, entries, read_manifest
from xruntime_emotion.util import sha256_file


@dataclass(frozen=True)
class Pair:
    format: str  # a catalog row (xruntime_emotion.model.catalog)
    runtime: str
    delegate: str | None = None

    @property
    def id(self) -> str:
        return f"{self.format} × {self.runtime}" + (f" + {Path(self.delegate).name}" if self.delegate else "")

    @property
    def precision(self) -> Precision:
        return FORMATS[self.format].precision


def base_matrix() -> list[Pair]:
    """Every (kind, runtime) pair the catalog lists, in catalog order."""
    return [Pair(f.name, rt) for f in FORMATS.values() for rt in f.verified_by]


MATRIX: tuple[Pair, ...] = tuple(base_matrix())  # the catalog's pairs when this module was imported


def artifact_path(pair: Pair, artifacts: Path) -> Path:
    row = FORMATS[pair.format]
    if row.shipped:
        from xruntime_emotion.weights import default_weights_path

        return default_weights_path().with_name(row.filename)
    return artifacts / row.filename


def asked_formats(target: str | None = None, formats: list[str] | None = None) -> list[str]:
    """The formats ``--format`` and ``--target`` ask for (each must then be in the folder)."""
    asked = [get_format(f).name for f in formats or []]
    if target:
        asked += [f for f in get_target(target).formats if f not in asked]
    return asked


def matrix(target: str | None = None, delegate: str | None = None, formats: list[str] | None = None) -> list[Pair]:
    """The pairs `verify` runs: the catalog's, narrowed to the formats asked for; a target's (or a given)
    delegate adds its own pair."""
    pairs = base_matrix()
    asked = asked_formats(target, formats)
    if asked:
        pairs = [p for p in pairs if p.format in asked]
    board = get_target(target) if target else None
    if board is None and delegate:  # a delegate alone: the host-runnable artifact the boards run with one
        board = next(t for t in TARGETS.values() if t.delegate and FORMATS[t.format].runs_on_host)
    if board is not None and (delegate or board.delegate):
        pairs.append(Pair(board.format, board.runtime, delegate or board.delegate))
    return pairs


def known_files() -> dict[str, str]:
    """Artifact file name -> format, for every kind `export` writes."""
    return {name: f.name for name, f in by_filename().items()}


@dataclass
class PairResult:
    pair: str
    format: str
    runtime: str
    status: str  # passed | failed | skipped
    reason: str = ""
    checks: dict[str, Any] = field(default_factory=dict)


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
    problem = FORMATS[pair.format].output.problem(got, len(cases))
    if problem:
        failures.append(f"output contract: {problem}")
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


def _judge_detector(name: str, gs: G.GoldenSet, directory: Path) -> PairResult:
    """A detector of the catalog on the golden photos: the same boxes as recorded, within the tolerance."""
    kind = DETECTORS[name]
    pair = f"detector {name} × {kind.runtime}"
    section = gs.manifest.get("detectors")
    rec = (section or {}).get("recorded", {}).get(name)
    if rec is None:
        why = "this golden set has no boxes recorded for it (xemotion golden regenerate)"
        return PairResult(pair, f"detector:{name}", kind.runtime, "skipped", why)
    assert section is not None
    if rec["model_sha256"] and kind.model and sha256_file(kind.model) != rec["model_sha256"]:
        why = f"{kind.model.name}: sha256 differs from the one the boxes were recorded with"
        return PairResult(pair, f"detector:{name}", kind.runtime, "failed", why)
    try:
        detector = build_detector(name)
    except MissingDependencyError as exc:
        return PairResult(pair, f"detector:{name}", kind.runtime, "skipped", str(exc))
    photos = detector_golden.photos(directory, section)
    found = [detector_golden.boxes(detector.detect(p)) for p in photos]
    errors = [detector_golden.box_error(got, want) for got, want in zip(found, rec["boxes"])]
    worst, limit = max(errors), section["tolerance"]["max_px"]
    boxes = sum(len(b) for b in rec["boxes"])
    checks = {"max_box_px": worst, "boxes": boxes, "cases": len(photos)}
    if worst <= limit:
        note = f"{boxes} boxes on {len(photos)} photos within {worst:g} px (≤ {limit})"
        return PairResult(pair, f"detector:{name}", kind.runtime, "passed", note, checks)
    bad = int(np.argmax(errors))
    why = (
        f"photo {bad}: other faces found than recorded"
        if math.isinf(worst)
        else f"photo {bad}: a box is {worst:g} px from the recorded one (> {limit})"
    )
    return PairResult(pair, f"detector:{name}", kind.runtime, "failed", why, checks)


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
    on_step: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Every pair of the matrix on the golden set; a report whose ``passed`` is False on any failure.

    ``on_step(pair, done, total)`` hears of each pair as it starts (progress).
    """
    artifacts = Path(artifacts)
    gs = G.load(golden_directory)
    weights = gs.manifest["weights_sha256"]
    recorded_sha = _preflight(artifacts, asked_formats(target, formats), weights)
    cases, imgs = gs.images()
    x = to_input(imgs)
    results: list[PairResult] = []
    outputs: dict[str, np.ndarray] = {}
    pairs = matrix(target, delegate, formats)
    for done, pair in enumerate(pairs):
        if on_step:
            on_step(pair.id, done, len(pairs))
        spec = RUNTIMES[pair.runtime]
        path = artifact_path(pair, artifacts)
        if not spec.available():
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", f"not installed: {spec.hint()}"))
            continue
        if not path.is_file():
            row = FORMATS[pair.format]
            via = f" --via {row.via}" if row.variant_of else ""
            hint = f"xemotion export --format {row.variant_of or row.name}{via} -o {artifacts}"
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", f"no {path.name}: {hint}"))
            continue
        if path.name in recorded_sha and sha256_file(path) != recorded_sha[path.name]:
            why = f"{path.name}: sha256 differs from {EXPORT_MANIFEST} (replaced or corrupt file)"
            results.append(PairResult(pair.id, pair.format, pair.runtime, "failed", why))
            continue
        try:
            backend = open_backend(path, pair.runtime, delegate=pair.delegate)
            got = predict_batched(backend, x).astype(np.float64)
        except MissingDependencyError as exc:
            results.append(PairResult(pair.id, pair.format, pair.runtime, "skipped", str(exc)))
            continue
        except ModelFileError as exc:
            results.append(PairResult(pair.id, pair.format, pair.runtime, "failed", str(exc)))
            continue
        results.append(_judge(pair, got, gs, cases, path, outputs))
    asked = asked_formats(target, formats)
    for row in FORMATS.values():  # artifacts only an accelerator runs: listed, never silently left out
        if (
            not row.runs_on_host
            and (not asked or row.name in asked)  # `--format onnx` did not ask for the NPU's file
            and (artifacts / row.filename).is_file()
            and not any(p.format == row.name for p in pairs)
        ):
            t = next((t for t in TARGETS.values() if t.format == row.name), None)
            where = f"run `xemotion verify --target {t.name.value}` on the {t.board}" if t else "run it on its NPU"
            results.append(
                PairResult(f"{row.name} × NPU", row.name, t.runtime if t else "", "skipped", f"needs the NPU: {where}")
            )
    for row in FORMATS.values():  # two producers' files of one kind describe the same graph
        base = FORMATS.get(row.variant_of or "")
        if base is None or base.name not in outputs or row.name not in outputs:
            continue
        d = np.abs(outputs[base.name] - outputs[row.name]).max(1)
        lim = gs.manifest["tolerances"]["cross_producer"]["max_abs"]
        w = int(d.argmax())
        ok = bool(d.max() <= lim)
        results.append(PairResult(
            f"{base.name} ({base.via}) vs {base.name} ({row.via})", base.name, base.runtime,
            "passed" if ok else "failed",
            "" if ok else f"producers differ by {d.max():.3g} > {lim} on case {cases[w].name}",
            {"max_abs_diff": float(d.max()), "worst_case": cases[w].name, "cases": len(cases)},
        ))  # fmt: skip
    if target is None and formats is None:  # the whole matrix: the face detectors too
        for done, name in enumerate(DETECTORS, len(pairs)):
            if on_step:
                on_step(f"detector {name}", done, len(pairs) + len(DETECTORS))
            results.append(_judge_detector(name, gs, golden_directory or G.golden_dir()))
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
