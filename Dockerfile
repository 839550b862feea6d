# xemotion in containers (BuildKit: the default builder since Docker 23). Every install and check
# step is docker/install.sh, which CI runs too; all Python packages are pinned by
# docker/constraints.txt and installed from binary wheels, so no stage has a compiler.
#
#   docker build --target export -t xemotion-export .
#       TensorFlow, tf2onnx, LiteRT, Vela and OpenCV: export every artifact and verify them (the
#       wheel carries the golden set and the int8 calibration sample; --user lets the container
#       write into your folders; mount FER2013 at /data only for `evaluate`):
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" xemotion-export export --all
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" xemotion-export verify
#
#   docker build -t xemotion .
#       the runtime (default target): onnxruntime, the shipped models (BlazeFace too), OpenCV (Haar) and pyarrow
#       (classify to Parquet); no TensorFlow, no build tools. --build-arg RUNTIME_EXTRAS= leaves OpenCV and
#       pyarrow out (classify then writes CSV only).
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" xemotion predict --detect photo.jpg --annotate faces.png
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" xemotion classify crops/ -o emotions.parquet

FROM python:3.13.11-slim-trixie AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid 10001 xemotion \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 xemotion \
    && install -d -o 10001 -g 10001 /work

# The sdist and the wheel, built from the checkout (the wheel carries golden/ as xruntime_emotion/golden_set).
FROM base AS wheel
WORKDIR /src
COPY . .
RUN bash docker/install.sh wheel /dist

# The export toolchain, installed as root into /opt/venv, checked and used as the unprivileged user.
FROM base AS export
RUN --mount=type=bind,from=wheel,source=/dist,target=/mnt/dist \
    --mount=type=bind,source=docker,target=/mnt/docker \
    bash /mnt/docker/install.sh export /opt/venv /mnt/dist/xemotion-*.whl
ENV XEMOTION_DATA=/data
USER 10001:10001
WORKDIR /work
RUN --mount=type=bind,source=docker,target=/mnt/docker \
    bash /mnt/docker/install.sh check export
ENTRYPOINT ["xemotion"]
CMD ["--help"]

# The runtime: the base install plus RUNTIME_EXTRAS (comma-separated pip extras).
FROM base AS runtime
ARG RUNTIME_EXTRAS=detect,classify
RUN --mount=type=bind,from=wheel,source=/dist,target=/mnt/dist \
    --mount=type=bind,source=docker,target=/mnt/docker \
    bash /mnt/docker/install.sh runtime /opt/venv /mnt/dist/xemotion-*.whl "$RUNTIME_EXTRAS"
USER 10001:10001
WORKDIR /work
RUN --mount=type=bind,source=docker,target=/mnt/docker \
    bash /mnt/docker/install.sh check runtime
ENTRYPOINT ["xemotion"]
CMD ["--help"]
