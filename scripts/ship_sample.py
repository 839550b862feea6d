"""Rewrite the int8 calibration sample the package ships, from the full FER2013.

    python scripts/ship_sample.py [--data FER2013]   # default: $XEMOTION_DATA/fer2013/fer2013.npz

Draws the default sample (100 calibration + 500 held-out Training rows, seed 0, near-duplicates of
PublicTest/PrivateTest faces left out) and writes xruntime_emotion/samples/fer2013_training_sample.npz
with deterministic bytes; run from a checkout. Prints what it wrote.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xruntime_emotion.model.calibration import SAMPLE_FILE, calibration_sample, write_sample
from xruntime_emotion.model.data import load_fer2013


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    data = load_fer2013(ap.parse_args().data)
    sample = calibration_sample(data)
    write_sample(sample, SAMPLE_FILE, data)
    d = sample.describe()
    print(json.dumps({"file": str(SAMPLE_FILE), "bytes": SAMPLE_FILE.stat().st_size, "rows": d["rows"][:5],
                      "near_duplicates": d["near_duplicates"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
