"""Opening untrusted model files without risking the host process.

TFLite interpreters can die by a signal (SIGSEGV, SIGABRT) on a malformed flatbuffer: the flatbuffer
verifier checks offsets, not tensor indices or buffer sizes, so even a verified file can take the
process down. No exception handler helps; only another process does. So, by default, a ``.tflite``
file is **probed** before it is loaded in-process: a helper process opens the same bytes with the same
runtime and options (delegate included) and classifies a batch of 1 face and then of 3, exactly as
the host will. If the helper dies by a signal or runs past the timeout (``PROBE_TIMEOUT_S``, 10 s;
``$XEMOTION_PROBE_TIMEOUT``), the file is refused
with ``UnsafeModelError`` (a ``ModelFileError``); if it raises, the host gets the same error class and
message. The helper runs under a 4 GiB address-space cap, so a file that declares absurd tensors fails
there instead of exhausting the machine. A file that passed is remembered by (sha256, runtime,
options) for the life of the process, and the host then loads the very bytes that were checked.

Measured with ``scripts/fuzz_models.py`` on LiteRT 2.3 (x86-64): thousands of random and structure-
targeted mutants raised clean errors; the one that took a process down declared a ~13 GB tensor and
was OOM-killed. Older ``tflite_runtime`` builds and NPU delegates on boards are less hardened.

The helper: on POSIX, one small fork server per host process (``python -m xruntime_emotion.runtime._probe
--serve``, started on the first probe, exits when the host does) forks one checker per file, which
costs tens of milliseconds; elsewhere each probe starts a fresh Python (a few hundred). Probing needs
``sys.executable`` to be a Python that can import xemotion; where it is not (frozen apps), pass
``probe=False`` and accept that a malformed file can crash the process.

ONNX files are probed too (onnxruntime refused every malformed file of ``scripts/fuzz_models.py`` with
an exception, but a model can be valid and still hang it, an ONNX ``Loop`` with 10^12 trips, or ask for
tens of GB). The shipped model is not: ``EmotionClassifier.default()`` checks its sha256 against the
package's manifest instead. Weights files (.npz, .h5) are not probed: their reader checks every
dataset's storage and shape before reading it (``model.h5io``). Before any of this, a model file must
be a regular file of at most ``MAX_MODEL_BYTES``, checked without reading it.

What a probe cannot promise: a model that crashes only on particular pixel values, or only on batch
sizes other than 1 and 3, still reaches the host; the fuzzer counts such escapes as host crashes.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from xruntime_emotion import errors
from xruntime_emotion.errors import ModelFileError, UnsafeModelError
from xruntime_emotion.util import env_number

PROBED_BY_DEFAULT: frozenset[str] = frozenset({".tflite", ".onnx"})  # file kinds (see backends.file_kind)
PROBE_TIMEOUT_S = 10.0  # the default wall-clock bound of one probe; $XEMOTION_PROBE_TIMEOUT overrides
MAX_MODEL_BYTES = 512 * 2**20  # larger files are refused before a byte is read; $XEMOTION_MAX_MODEL_BYTES
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding xruntime_emotion/

_lock = threading.Lock()
_passed: set[tuple[str, str, str]] = set()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # a single-threaded server forks safely
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _read_line(fd: int, timeout: float) -> bytes | None:
    """One line from ``fd`` within ``timeout`` seconds; None on timeout or end of file."""
    buf = b""
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        buf += chunk
    return buf


class _Server:
    """The fork server: one request at a time (callers hold ``_lock``)."""

    def __init__(self) -> None:
        self.err: IO[bytes] = tempfile.TemporaryFile()
        self.owner = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xruntime_emotion.runtime._probe", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=_env(),
            start_new_session=True,  # Ctrl-C in the terminal is for the host
        )

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            return None
        line = _read_line(self.proc.stdout.fileno(), timeout + 10.0)
        return None if line is None else dict(json.loads(line))

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace").strip()[-300:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.err.close()


_server: _Server | None = None


def _ask_server(request: dict[str, Any]) -> dict[str, Any]:
    global _server
    why = ""
    for _ in range(2):  # a server that died (killed from outside) is restarted once
        if _server is None or _server.owner != os.getpid() or _server.proc.poll() is not None:
            try:
                _server = _Server()  # after a fork the parent's server stays the parent's
            except OSError as exc:  # no usable sys.executable (an embedded or frozen Python)
                why = str(exc)
                break
        answer = _server.ask(request, request["timeout"])
        if answer is not None:
            return answer
        if _server.proc.poll() is None:  # alive but silent past the timeout
            _server.close()
            _server = None
            return {"ok": False, "signal": int(signal.SIGALRM)}
        why = _server.stderr()
        _server.close()
        _server = None
    raise ModelFileError(
        f"could not start the probe process ({why or 'no answer'}); pass probe=False to load the file without it"
    )


def _ask_once(request: dict[str, Any]) -> dict[str, Any]:
    """A fresh Python per probe, for platforms without fork."""
    cmd = [sys.executable, "-m", "xruntime_emotion.runtime._probe", "--once"]
    try:
        done = subprocess.run(
            cmd, input=json.dumps(request).encode(), capture_output=True, env=_env(), timeout=request["timeout"]
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "signal": int(getattr(signal, "SIGALRM", 14))}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode == 0 and lines:
        return dict(json.loads(lines[-1]))
    stderr = done.stderr.decode(errors="replace").strip()[-300:]
    if done.returncode < 0:
        return {"ok": False, "signal": -done.returncode, "stderr": stderr}
    return {"ok": False, "exit": done.returncode, "stderr": stderr}


def _refusal(path: Path, runtime: str, answer: dict[str, Any], timeout: float) -> ModelFileError:
    detail = f" ({answer['stderr']})" if answer.get("stderr") else ""
    if "signal" in answer:
        sig = int(answer["signal"])
        if sig == getattr(signal, "SIGALRM", None):
            return UnsafeModelError(
                f"{path}: {runtime} did not finish with it within {timeout:g} s ($XEMOTION_PROBE_TIMEOUT)", sig
            )
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return UnsafeModelError(f"{path}: {runtime} crashed ({name}) on this file in a probe process{detail}", sig)
    if "exit" in answer:
        return UnsafeModelError(f"{path}: the probe process exited with status {answer['exit']}{detail}")
    cls = getattr(errors, str(answer.get("error")), None)
    if isinstance(cls, type) and issubclass(cls, errors.XEmotionError) and cls is not UnsafeModelError:
        return cls(answer.get("message", ""))  # type: ignore[return-value]
    return ModelFileError(f"{path}: {runtime} cannot load it ({answer.get('error')}: {answer.get('message')})")


def probe_timeout() -> float:
    """Seconds a probe may take: $XEMOTION_PROBE_TIMEOUT (an NPU delegate that compiles the graph first may
    need more than the default), else ``PROBE_TIMEOUT_S``."""
    return env_number("XEMOTION_PROBE_TIMEOUT", PROBE_TIMEOUT_S, 0, 3600)


def check_model_file(path: Path) -> int:
    """The size of ``path`` once it is known to be a regular file of a sane size; nothing is read."""
    limit = int(env_number("XEMOTION_MAX_MODEL_BYTES", MAX_MODEL_BYTES, 0, 2**40))
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path}: not a regular file (a FIFO, device or folder is never opened)")
    if st.st_size == 0:
        raise ModelFileError(f"{path}: empty file")
    if st.st_size > limit:
        raise ModelFileError(f"{path}: {st.st_size} bytes, over the {limit}-byte limit ($XEMOTION_MAX_MODEL_BYTES)")
    return st.st_size


def probe(
    path: str | Path, runtime: str, *, timeout: float | None = None, spec: dict[str, Any] | None = None, **options: Any
) -> bytes:
    """Check ``path`` with ``runtime`` in a helper process (module docstring); return the checked bytes.

    ``options`` are the backend's (a delegate, say), JSON-serialisable; thread counts are not passed.
    ``timeout``: seconds (default ``probe_timeout()``). ``spec``: the runtime's registry row, for a runtime
    registered in this process only (a plug-in), which the helper then registers too.
    """
    path = Path(path)
    check_model_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    options = {k: v for k, v in options.items() if k not in ("threads", "num_threads", "model_content")}
    key = (digest, runtime, json.dumps(options, sort_keys=True, default=str))
    request = {
        "path": str(path.resolve()),
        "sha256": digest,
        "runtime": runtime,
        "options": options,
        "timeout": probe_timeout() if timeout is None else timeout,
        "spec": spec,
    }
    with _lock:
        if key in _passed:
            return data
        answer = _ask_server(request) if hasattr(os, "fork") else _ask_once(request)
        if answer.get("ok"):
            _passed.add(key)
            return data
    raise _refusal(path, runtime, answer, request["timeout"])


@atexit.register
def shutdown() -> None:
    """Stop the fork server (it also stops by itself when this process exits)."""
    global _server
    with _lock:
        if _server is not None and _server.owner == os.getpid():
            _server.close()
        _server = None
