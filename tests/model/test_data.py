"""xruntime_emotion.model.data: the FER2013 loaders (npz, csv, Kaggle folders) and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from xruntime_emotion.errors import (
    DataError,
)
from xruntime_emotion.model.data import FerData, Split, image_sha256, load_fer2013
from xruntime_emotion.weights import default_weights_path


def _write_csv(path: Path, fer: FerData, rows: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for i in rows:
            f.write(f"{fer.labels[i]},{' '.join(map(str, fer.images[i].ravel()))},{fer.usage[i]}\n")


def _rows(fer: FerData) -> np.ndarray:
    return np.concatenate([fer.indices(s)[:5] for s in Split])


def test_csv_layout(tmp_path: Path, fer: FerData) -> None:
    rows = _rows(fer)
    _write_csv(tmp_path / "fer2013.csv", fer, rows)
    d = load_fer2013(tmp_path / "fer2013.csv")
    np.testing.assert_array_equal(d.images, fer.images[rows])
    np.testing.assert_array_equal(d.labels, fer.labels[rows])
    assert d.sizes() == {"Training": 5, "PublicTest": 5, "PrivateTest": 5}


def test_kaggle_folder_layout(tmp_path: Path, fer: FerData) -> None:
    from PIL import Image

    from xruntime_emotion.model.ir import LABELS

    rows = _rows(fer)
    for i in rows:
        sub = "train" if fer.usage[i] == "Training" else "test"
        prefix = "Training" if sub == "train" else fer.usage[i]
        p = tmp_path / sub / LABELS[fer.labels[i]] / f"{prefix}_{i:08d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fer.images[i]).save(p)
    d = load_fer2013(tmp_path)
    assert d.sizes() == {"Training": 5, "PublicTest": 5, "PrivateTest": 5}
    assert {image_sha256(im) for im in d.images} == {image_sha256(fer.images[i]) for i in rows}


@pytest.mark.parametrize("bad", ["short_row", "bad_label", "no_columns", "empty_split", "bad_folder_label"])
def test_bad_data_is_a_clear_error(tmp_path: Path, fer: FerData, bad: str) -> None:
    p = tmp_path / "fer2013.csv"
    if bad == "short_row":
        p.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    elif bad == "bad_label":
        p.write_text("emotion,pixels,Usage\n9," + " ".join(["0"] * 2304) + ",Training\n")
    elif bad == "no_columns":
        p.write_text("a,b\n1,2\n")
    elif bad == "empty_split":
        p.write_text("emotion,pixels,Usage\n0," + " ".join(["0"] * 2304) + ",Training\n")
        with pytest.raises(DataError, match="PrivateTest is empty"):
            load_fer2013(p).split(Split.PRIVATE_TEST)
        return
    else:
        (tmp_path / "train" / "joy").mkdir(parents=True)
        (tmp_path / "test").mkdir()
        p = tmp_path
    with pytest.raises(DataError):
        load_fer2013(p)
    r = run_cli("evaluate", "--model", str(default_weights_path()), "--data", str(p))
    assert r.returncode != 0 and "error:" in r.stderr and "Traceback" not in r.stderr
