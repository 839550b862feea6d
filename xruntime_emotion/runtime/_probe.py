"""The checker that ``xruntime_emotion.runtime.safety`` runs in a helper process, never in the host.

    python -m xruntime_emotion.runtime._probe --serve   # fork server: one JSON request per stdin line
    python -m xruntime_emotion.runtime._probe --once    # one request on stdin (platforms without fork)

A request names a file, its sha256, a runtime, backend options and the checker's limits (time, memory).
The checker opens exactly those bytes with that runtime (from memory, as the host will; by path only for
an ONNX file with external data) and classifies a batch of 1 face and then of 3 (a tensor resize). The
answer is one JSON line: ``{"ok": true}``, or ``{"ok": false}`` with ``error`` and
``message`` (an exception), ``signal`` (killed; SIGALRM means it ran past its time) or ``exit``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MEMORY_LIMIT = 4 << 30  # address space of a checker, unless the request says (safety.PROBE_MEMORY_BYTES)


def _faces() -> np.ndarray:
    """Three uint8 faces: black, white and a gradient."""
    ramp = np.linspace(0, 255, 48 * 48).reshape(48, 48)
    return np.stack([np.zeros((48, 48)), np.full((48, 48), 255), ramp]).astype(np.uint8)


def check(request: dict[str, Any]) -> None:
    """Open the file with the host's code path and classify; raises what the host would raise."""
    from xruntime_emotion.errors import ModelFileError
    from xruntime_emotion.runtime.backends import RUNTIMES, RuntimeSpec, open_backend
    from xruntime_emotion.runtime.classifier import EmotionClassifier

    path = Path(request["path"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != request["sha256"]:
        raise ModelFileError(f"{path}: the file changed while it was being checked")
    runtime = request["runtime"]
    if runtime not in RUNTIMES and request.get("spec"):  # a plug-in registered by the host at run time
        spec = dict(request["spec"])
        RUNTIMES[runtime] = RuntimeSpec(**{k: tuple(map(tuple, v)) if k == "fixed_options" else
                                          tuple(v) if isinstance(v, list) else v for k, v in spec.items()})  # fmt: skip
    options = dict(request.get("options", {}))
    suffixes = RUNTIMES[runtime].suffixes
    if ".tflite" in suffixes:
        options.update(model_content=data, num_threads=1)
    elif ".onnx" in suffixes:
        options["threads"] = 1
        if not request.get("external"):
            options["model_content"] = data
    clf = EmotionClassifier(open_backend(path, runtime, probe=False, **options))
    faces = _faces()
    clf.predict(faces[:1])
    clf.predict(faces)


def _memory(request: dict[str, Any]) -> int:
    return int(request.get("memory") or MEMORY_LIMIT)


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    from xruntime_emotion.errors import XEmotionError

    try:
        check(request)
    except XEmotionError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except MemoryError:
        return {"ok": False, "error": "ModelFileError", "message": f"needs more than {_memory(request) >> 30} GiB"}
    except Exception as exc:  # the runtimes raise anything on a malformed file
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)[:300]}
    return {"ok": True}


def _limit(timeout: float | None, memory: int) -> None:
    """Cap this process's memory (and time, where alarm exists): a checker must not hurt the machine."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if timeout and hasattr(signal, "alarm"):
        signal.alarm(max(1, int(timeout)))  # default action: the checker dies by SIGALRM


def _tail(f: Any) -> str:
    f.seek(0)
    lines = [s.strip() for s in f.read().decode(errors="replace").splitlines() if s.strip()]
    return " | ".join(lines[-3:])[-400:]


def _fork_check(request: dict[str, Any]) -> dict[str, Any]:
    """Check in a forked child; its death is reported, never shared."""
    r, w = os.pipe()
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the checker
            try:
                os.close(r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)  # runtimes print; the protocol owns stdout
                os.dup2(err.fileno(), 2)
                _limit(request.get("timeout"), _memory(request))
                os.write(w, json.dumps(_answer(request)).encode())
            finally:
                os._exit(0)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 1 << 16):
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return {"ok": False, "signal": os.WTERMSIG(status), "stderr": _tail(err)}
        try:
            answer: dict[str, Any] = json.loads(b"".join(chunks))
        except ValueError:
            return {"ok": False, "exit": os.waitstatus_to_exitcode(status), "stderr": _tail(err)}
        if not answer.get("ok"):
            answer["stderr"] = _tail(err)
        return answer


def serve() -> None:
    """Answer requests until stdin closes (the host exited or shut the server down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the host
    from xruntime_emotion.runtime import backends, classifier  # noqa: F401 - imported once here, shared by every fork

    with contextlib.suppress(ImportError):
        import ai_edge_litert.interpreter  # noqa: F401 - starts no threads, so forking stays safe
    for line in sys.stdin:
        if line.strip():
            sys.stdout.write(json.dumps(_fork_check(json.loads(line))) + "\n")
            sys.stdout.flush()


def once() -> None:
    """One request on stdin, one answer on the original stdout; a crash is the exit status."""
    request = json.loads(sys.stdin.read())
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    _limit(None, _memory(request))  # the host enforces the time
    os.write(out, (json.dumps(_answer(request)) + "\n").encode())


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["--serve"] else once()
