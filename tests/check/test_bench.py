"""xruntime_emotion.check.bench: `xemotion bench` runs and writes well-formed JSON (figures are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli


def test_bench_writes_rows_with_classifier_and_raw(tmp_path: Path, artifacts: Path) -> None:
    out = tmp_path / "bench.json"
    r = run_cli("bench", "--artifacts", str(artifacts), "--runs", "200", "--batch", "1,8", "--threads", "1",
                "--no-keras", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(out.read_text())
    rows = {(row["model"], row["runtime"]): row for row in rep["rows"]}
    assert set(rows) == {
        ("emotion_float32.onnx", "onnxruntime"), ("emotion_int8.onnx", "onnxruntime"),
        ("emotion_float32.tflite", "litert"), ("emotion_uint8_float32.tflite", "litert"),
    }  # fmt: skip
    for row in rows.values():
        assert row["batch1_classifier"]["p50_ms"] > 0 and row["batch1_raw"]["p50_ms"] > 0
        assert row["batch1_ratio"] > 0 and row["peak_rss_mb"] > 0
        assert {"import", "load", "first_inference", "total"} <= set(row["cold_start_ms"])
        assert set(row["throughput"]) == {"1", "8"}
    assert rep["cli_predict_cold_start_ms"] > 0 and rep["machine"]["cores"]
