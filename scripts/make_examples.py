"""Write examples/, the inputs the README's commands use, from what the package already ships.

    python scripts/make_examples.py   # run from a checkout; no data set needed

- examples/face.png: NXP's test.jpg (FER2013 PrivateTest row 32414), its pixels from the golden set;
- examples/photo.png: the golden detector photo with the most faces (made by code from Training faces);
- examples/crops/: 16 face crops, the first rows of the shipped Training calibration sample;
- examples/crops.csv: a table with a `path` column naming those crops (relative to its folder).

The bytes are deterministic (PNG without metadata), so a rerun rewrites the same files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from xruntime_emotion.check import golden
from xruntime_emotion.model.calibration import shipped_sample

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "examples"
CROPS = 16


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    gs = golden.load()
    (OUT / "crops").mkdir(parents=True, exist_ok=True)
    (OUT / "face.png").write_bytes(png(gs.faces[golden.HAPPY]))
    photos = json.loads((ROOT / "golden" / "manifest.json").read_text())["detectors"]["photos"]
    most = max(photos, key=lambda p: len(p["truth"]))
    (OUT / "photo.png").write_bytes((ROOT / "golden" / most["file"]).read_bytes())
    sample = shipped_sample()
    names = []
    for row, img in zip(sample.rows[:CROPS], sample.images[:CROPS]):
        name = f"crops/fer2013_{row}.png"
        (OUT / name).write_bytes(png(img))
        names.append(name)
    (OUT / "crops.csv").write_text("path\n" + "".join(f"{n}\n" for n in names))
    written = sorted(p.relative_to(ROOT).as_posix() for p in OUT.rglob("*") if p.is_file())
    print(json.dumps({"files": len(written), "bytes": sum((ROOT / p).stat().st_size for p in written),
                      "photo": most["file"], "faces_in_photo": len(most["truth"])}))  # fmt: skip


if __name__ == "__main__":
    main()
