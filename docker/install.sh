#!/usr/bin/env bash
# The one install-and-check recipe: the Dockerfile's RUN lines and CI run these same steps.
#
#   install.sh wheel OUTDIR                  sdist and wheel of this checkout (pinned setuptools, build)
#   install.sh runtime VENV WHEEL [EXTRAS]   new venv with the base install (+ comma-separated extras)
#   install.sh export VENV WHEEL             new venv with the export, litert, imx93 and detect extras
#   install.sh check runtime|export [VENV]   prove that install works (VENV's tools, else those on PATH)
#
# Every pip install is pinned by constraints.txt beside this script and takes binary wheels only.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONSTRAINTS=$HERE/constraints.txt
PYTHON=${PYTHON:-python3}
EXPORT_EXTRAS=export,litert,imx93,detect

die() {
    echo "install.sh: $*" >&2
    exit 1
}

pip_install() { # pip_install VENV REQUIREMENT...
    local venv=$1
    shift
    "$venv/bin/python" -m pip install --no-input --disable-pip-version-check --only-binary=:all: \
        --constraint "$CONSTRAINTS" "$@"
}

new_venv() { # new_venv VENV: a venv without system site packages, refusing to reuse one
    [[ -e $1 ]] && die "$1 already exists"
    "$PYTHON" -m venv "$1"
}

cmd_wheel() {
    local out=${1:?usage: install.sh wheel OUTDIR}
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    new_venv "$tmp/venv"
    pip_install "$tmp/venv" --quiet setuptools build wheel
    # sdist first, then the wheel from the unpacked sdist: proves the sdist is complete and keeps
    # stale files of the source tree's build/ out of the wheel.
    "$tmp/venv/bin/python" -m build --no-isolation --outdir "$out" "$(dirname "$HERE")"
}

install_wheel() { # install_wheel VENV WHEEL EXTRAS
    local venv=$1 wheel=$2 extras=$3
    [[ -f $wheel ]] || die "no wheel at $wheel"
    new_venv "$venv"
    pip_install "$venv" "$wheel${extras:+[$extras]}"
}

cmd_runtime() {
    install_wheel "${1:?usage: install.sh runtime VENV WHEEL [EXTRAS]}" "${2:?missing WHEEL}" "${3:-}"
}

cmd_export() {
    install_wheel "${1:?usage: install.sh export VENV WHEEL}" "${2:?missing WHEEL}" "$EXPORT_EXTRAS"
}

cmd_check() {
    local stage=${1:?usage: install.sh check runtime|export [VENV]}
    [[ $stage == runtime || $stage == export ]] || die "check what? runtime or export, not $stage"
    if [[ -n ${2:-} ]]; then
        PATH=$2/bin:$PATH
    fi
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    cd "$tmp"

    echo "== $(command -v xemotion): $(xemotion --version)"
    python - "$stage" <<'PY'
import importlib.util
import sys

import xruntime_emotion
from xruntime_emotion.model.synthetic import synthetic_cases
from xruntime_emotion.weights import default_onnx_path, default_weights_path
from PIL import Image

print("xemotion", xruntime_emotion.__version__, "weights:", default_weights_path().name, default_onnx_path().name)
tf = importlib.util.find_spec("tensorflow")
if sys.argv[1] == "runtime" and tf is not None:
    sys.exit(f"the runtime install has TensorFlow ({tf.origin})")
if sys.argv[1] == "export":
    import ai_edge_litert
    import keras
    import onnx
    import tensorflow
    import tf2onnx

    for m in (tensorflow, keras, tf2onnx, onnx, ai_edge_litert):
        print(m.__name__, getattr(m, "__version__", "?"))
Image.fromarray(dict(synthetic_cases())["radial"]).save("face.png")
PY

    xemotion predict face.png --json predict.json | tee predict.txt
    grep -q "Recognized emotion" predict.txt || die "predict printed no label"
    python - <<'PY'
import json
import math

from xruntime_emotion import LABELS

r = json.load(open("predict.json"))["results"][0]
assert r["label"] in LABELS and math.isclose(sum(r["probabilities"].values()), 1.0, abs_tol=1e-4), r
PY

    # --detect: the shipped BlazeFace model runs on onnxruntime everywhere (one face on a golden photo);
    # --detector haar where OpenCV is installed, else the install hint (exit 3).
    photo=$(python -c "from xruntime_emotion.check.golden import golden_dir; print(golden_dir() / 'detector' / 'photo_1.png')")
    python -c "import xruntime_emotion as x, pathlib; from xruntime_emotion.runtime.detect import BLAZEFACE as m
assert m.is_file() and m.resolve().is_relative_to(pathlib.Path(x.__file__).resolve().parent), m  # in the package"
    xemotion predict --detect "$photo" --json detect.json
    python -c "import json; r = json.load(open('detect.json'))['results'][0]; assert len(r['faces']) == 1, r"
    if python -c "import cv2" 2>/dev/null; then
        xemotion predict --detect --detector haar "$photo"
    else
        local rc=0
        xemotion predict --detect --detector haar "$photo" 2>detect.err || rc=$?
        if [[ $rc != 3 ]] || ! grep -q "xemotion\[detect\]" detect.err; then
            die "predict --detector haar without OpenCV: exit $rc, $(cat detect.err)"
        fi
        echo "predict --detector haar without OpenCV: install hint, exit 3"
    fi

    # classify: CSV with the base install; Parquet where pyarrow is installed, else the install hint (exit 3).
    mkdir crops && cp face.png crops/a.png && cp face.png crops/b.png
    xemotion classify crops -o classified.csv
    [[ $(wc -l <classified.csv) == 3 ]] || die "classify wrote $(wc -l <classified.csv) lines, not a header and 2 rows"
    if python -c "import pyarrow" 2>/dev/null; then
        xemotion classify crops -o classified.parquet
    else
        local rc=0
        xemotion classify crops -o classified.parquet 2>classify.err || rc=$?
        if [[ $rc != 3 ]] || ! grep -q "xemotion\[classify\]" classify.err; then
            die "classify to Parquet without pyarrow: exit $rc, $(cat classify.err)"
        fi
        echo "classify to Parquet without pyarrow: install hint, exit 3"
    fi

    if [[ $stage == export ]]; then
        echo "vela $(vela --version)"
        xemotion export --format onnx --format tflite-fp32 --output artifacts
        xemotion predict --model artifacts/emotion_float32.tflite face.png
    fi
    echo "== install.sh check $stage: ok"
}

case ${1:-} in
wheel | runtime | export | check)
    cmd=$1
    shift
    "cmd_$cmd" "$@"
    ;;
*) die "usage: install.sh wheel|runtime|export|check ... (see the head of this script)" ;;
esac
