"""The plan of the code, checked: the TensorFlow boundary, one catalog of artifact kinds, one door to a backend."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xruntime_emotion
from xruntime_emotion.model.catalog import FORMATS, Format, Precision, exported_formats, registered
from xruntime_emotion.runtime.backends import RUNTIMES, RuntimeSpec

PACKAGE = Path(xruntime_emotion.__file__).parent
FORBIDDEN = {"exporters", "tensorflow", "tf_keras", "keras", "tf2onnx"}
MAY_REACH_EXPORTERS = {"cli.py"}  # export and train, lazily


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, and of every string passed to importlib.import_module."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def boundary_violations(root: Path) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for line, name in imported_names(path):
            if name.split(".")[0] in FORBIDDEN and not (
                name.startswith("exporters") and path.name in MAY_REACH_EXPORTERS
            ):
                bad.append(f"{path.relative_to(root)}:{line}: {name}")
    return bad


def test_the_app_side_never_imports_tensorflow_or_the_exporters() -> None:
    assert boundary_violations(PACKAGE) == []
    for spec in RUNTIMES.values():  # TensorFlow's runtimes are registered by module string, on the exporters side
        if "tensorflow" in spec.probe:
            assert spec.module.startswith("exporters."), spec
    assert "tensorflow" not in (PACKAGE / "runtime" / "backends" / "litert.py").read_text()


def test_the_boundary_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from exporters.train import train\n")
    (tmp_path / "b.py").write_text("import importlib\nimportlib.import_module('tensorflow.lite')\n")
    (tmp_path / "c.py").write_text("import keras.layers as L\nfrom tf2onnx import convert\n")
    (tmp_path / "cli.py").write_text("from exporters.pipeline import plan\nimport tensorflow\n")
    assert boundary_violations(tmp_path) == [
        "a.py:2: exporters.train", "b.py:2: tensorflow.lite", "c.py:1: keras.layers", "c.py:2: tf2onnx",
        "cli.py:2: tensorflow",
    ]  # fmt: skip


def test_predict_verify_and_info_load_no_tensorflow(tmp_path: Path) -> None:
    """In one process, as the CLI runs them: afterwards no TensorFlow module has been imported."""
    from PIL import Image

    from xruntime_emotion.check.golden import HAPPY, load
    from xruntime_emotion.weights import default_onnx_path

    (tmp_path / "a").mkdir()
    shutil.copy(default_onnx_path(), tmp_path / "a")
    Image.fromarray(load().faces[HAPPY]).save(tmp_path / "face.png")
    code = f"""
import json, sys
from xruntime_emotion.cli import app
for args in (["predict", "face.png"], ["verify", "--target", "cpu", "--artifacts", "a"],
             ["info", "a/emotion_float32.onnx"]):
    app(args, standalone_mode=False)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {sorted(FORBIDDEN)!r})))
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 pairs passed, 0 failed" in r.stderr and "Recognized emotion" in r.stdout
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------------------------ one catalog row
FAKE = Format(
    "fake-fp32",
    "emotion_fake.onnx",
    Precision.FP32,
    "fake-rt",
    "test_architecture:make_fake",
    ("fake-rt",),
    description="a plug-in kind: the shipped ONNX under another name, run by a plug-in runtime",
)


def make_fake(ctx: Any) -> Any:
    from exporters.pipeline import Made
    from xruntime_emotion.weights import default_onnx_path

    return Made(default_onnx_path().read_bytes(), "fake-producer", {})


def test_a_new_kind_is_one_catalog_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporters.context import ExportContext
    from exporters.pipeline import export, plan
    from xruntime_emotion.check.bench import default_models
    from xruntime_emotion.check.verify import matrix, verify

    # a plug-in runtime row: another name for an installed backend module (the probe process imports it too)
    ort = "xruntime_emotion.runtime.backends.ort:open_backend"
    spec = RuntimeSpec("fake-rt", ort, ("onnxruntime",), "", (".onnx",), threads_option="threads")
    monkeypatch.setitem(RUNTIMES, spec.name, spec)
    with registered(FAKE):
        assert "fake-fp32" in exported_formats() and ("fake-fp32", "fake-rt") in [
            (p.format, p.runtime) for p in matrix()
        ]
        p = plan(["fake-fp32"])
        assert p.formats == ("fake-fp32",) and p.calibration is None
        assert "fake-fp32" in plan(all_formats=True, calib_data=None).formats
        from xruntime_emotion.model.ir import ModelIR

        manifest = export(ExportContext(ModelIR.default(), p.options), list(p.formats), tmp_path)
        entry = manifest["artifacts"]["fake-fp32"]
        assert entry["producer"] == "fake-producer" and entry["validation"]["status"] == "passed"
        assert tmp_path / "emotion_fake.onnx" in default_models(tmp_path)
        report = verify(tmp_path, formats=["fake-fp32"])
        assert report["passed"] and [r["pair"] for r in report["results"]] == ["fake-fp32 × fake-rt"]
    assert "fake-fp32" not in FORMATS and "fake-fp32" not in exported_formats()


def test_verify_refuses_a_malformed_tflite_through_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with TFLite's magic but garbage inside never reaches this process's interpreter."""
    from xruntime_emotion.check.verify import verify
    from xruntime_emotion.runtime import safety

    rng = np.random.default_rng(0)
    bad = b"\x1c\x00\x00\x00TFL3" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / FORMATS["tflite-fp32"].filename).write_bytes(bad)
    seen: list[str] = []
    real = safety.probe

    def spy(path: Any, runtime: str, **options: Any) -> bytes:
        seen.append(runtime)
        return real(path, runtime, **options)

    monkeypatch.setattr(safety, "probe", spy)
    report = verify(tmp_path, formats=["tflite-fp32"])
    ran = [r for r in report["results"] if r["status"] != "skipped"]
    assert ran and all(r["status"] == "failed" for r in ran) and not report["passed"]
    assert seen and all(rt in ("litert", "tflite_runtime") for rt in seen)
    assert all("not a loadable TFLite model" in r["reason"] for r in ran), ran  # the probe's verdict, passed on


# --------------------------------------------------------------------------------------------- layers
LAYERS = {  # top-level name under xruntime_emotion -> layer; imports may only point down (or sideways, acyclic)
    "errors": 0, "_version": 0, "atomic": 0, "util": 0,
    "model": 1, "weights": 1,
    "runtime": 2,
    "check": 3, "batch": 3,
    "cli": 4, "console": 4, "_compat": 4, "__main__": 4,
    "": 5,  # the package itself: the public API facade
}  # fmt: skip


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    names = {module_name(p, root) for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {n: set() for n in names}
    for path in root.rglob("*.py"):
        me = module_name(path, root)
        package = me if path.name == "__init__.py" else me.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
            for t in targets:
                while t and t not in names:
                    t = t.rpartition(".")[0]
                if t and t != me:
                    graph[me].add(t)
    return graph


def layer_of(module: str, root_name: str) -> int:
    rest = module.removeprefix(root_name).lstrip(".")
    return LAYERS[rest.split(".")[0]]


def layering_problems(graph: dict[str, set[str]], root_name: str) -> list[str]:
    """Upward imports, and circles (strongly connected groups of modules)."""
    problems = [
        f"{a} -> {b} (layer {layer_of(a, root_name)} -> {layer_of(b, root_name)})"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if layer_of(b, root_name) > layer_of(a, root_name)
    ]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                problems.append("circle: " + " <-> ".join(sorted(group)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return problems


def test_imports_point_down_the_layers_without_circles() -> None:
    graph = import_graph(PACKAGE)
    assert {"xruntime_emotion.model.ir", "xruntime_emotion.runtime.classifier", "xruntime_emotion.check.verify"} <= set(
        graph
    )
    assert "xruntime_emotion.model.labels" in graph["xruntime_emotion.runtime.classifier"]
    assert layering_problems(graph, "xruntime_emotion") == []


def test_the_layer_check_sees_circles_and_upward_imports(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    for sub in ("model", "runtime"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "model" / "a.py").write_text("from pkg.runtime.c import x\n")  # upward
    (root / "runtime" / "c.py").write_text("def f():\n    from . import d\n")
    (root / "runtime" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import f\n"
    )
    assert layering_problems(import_graph(root), "pkg") == [
        "pkg.model.a -> pkg.runtime.c (layer 1 -> 2)",
        "circle: pkg.runtime.c <-> pkg.runtime.d",
    ]


def test_old_module_paths_still_import_for_one_release() -> None:
    code = "import warnings; warnings.simplefilter('error');from xruntime_emotion.ir import ModelIR"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "xruntime_emotion.ir is now xruntime_emotion.model.ir" in r.stderr
    code = (
        "import warnings; warnings.simplefilter('ignore');"
        "from xruntime_emotion.runtimes.ort import OrtBackend as A; from xruntime_emotion.runtime.backends.ort import "
        "OrtBackend as B; from xruntime_emotion.classifier import EmotionClassifier as C; import xruntime_emotion as x;"
        "assert A is B and C is x.EmotionClassifier; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr
