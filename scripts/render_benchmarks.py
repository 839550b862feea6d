"""Render `xemotion bench --json` output as the Markdown table of BENCHMARKS.md.

python scripts/render_benchmarks.py bench.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str) -> None:
    rep = json.loads(Path(path).read_text())
    m = rep["machine"]
    print(f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; {rep['runs']} timed runs per row.\n")
    print(
        "| model | runtime | threads | cold start ms (import / load / first) | batch-1 API p50 / p90 / p99 ms "
        "| batch-1 raw p50 ms | API / raw | batch-64 API / raw (faces/s) | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rep["rows"]:
        if "error" in r:
            print(f"| {r['model']} | {r['runtime']} | | error: {r['error'][:60]} | | | | | |")
        elif "batch1_predict_on_batch" in r:
            k, c = r["batch1_predict_on_batch"], r["batch1_call"]
            print(
                f"| {r['model']} | Keras `predict_on_batch` (`model(x)`: {c['p50_ms']:.2f}) | {r['threads']} "
                f"| – / {r['cold_start_ms']['load']:.0f} / {r['cold_start_ms']['first_inference']:.0f} "
                f"| {k['p50_ms']:.3f} / {k['p90_ms']:.3f} / {k['p99_ms']:.3f} | | | | {r['peak_rss_mb']:.0f} |"
            )
        else:
            cs, a, w = r["cold_start_ms"], r["batch1_classifier"], r["batch1_raw"]
            t = r["throughput"].get("64")
            tp = f"{t['classifier_per_s']:.0f} / {t['raw_per_s']:.0f} ({t['ratio']:.2f})" if t else "batch 1 only"
            print(
                f"| {r['model']} | {r['runtime']} | {r['threads']} "
                f"| {cs['import']:.0f} / {cs['load']:.0f} / {cs['first_inference']:.0f} "
                f"| {a['p50_ms']:.3f} / {a['p90_ms']:.3f} / {a['p99_ms']:.3f} | {w['p50_ms']:.3f} "
                f"| {r['batch1_ratio']:.3f} | {tp} | {r['peak_rss_mb']:.0f} |"
            )
    print(
        f"\nCLI cold start, `xemotion predict face.png` on the shipped ONNX: {rep['cli_predict_cold_start_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main(sys.argv[1])
