"""Opening untrusted model files without risking the host process.

TFLite interpreters can die by a signal (SIGSEGV, SIGABRT) on a malformed flatbuffer: the flatbuffer
verifier checks offsets, not tensor indices or buffer sizes, so even a verified file can take the
process down. No exception handler helps; only another process does. So, by default, a ``.tflite``
file is **probed** before it is loaded in-process: a helper process opens the same bytes with the same
runtime and options (delegate included) and classifies a batch of 1 face and then of 3, exactly as
the host will. If the helper dies by a signal or runs past the timeout (``PROBE_TIMEOUT_S``, 10 s;
``$XEMOTION_PROBE_TIMEOUT``), the file is refused
with ``UnsafeModelError`` (a ``ModelFileError``); if it raises, the host gets the same error class and
message. The helper runs under a 4 GiB address-space cap (``PROBE_MEMORY_BYTES``), so a file that
declares absurd tensors fails there instead of exhausting the machine. The host then loads the very
bytes that were read and checked (from memory), never the path again.

Passes are remembered, refusals never. The verdict's key is the file's sha256 together with all it
depends on: the runtime, its version and installed file, the backend options (delegate, and the delegate
file's size and time), the probe's time and memory limits, the platform, Python and xemotion's version. Within a
process the key is kept in memory; across processes it is a file in the probe cache,
``$XDG_CACHE_HOME/xemotion/probe`` (else ``~/.cache/xemotion/probe``), so an app that restarts does not
pay the probe again. ``$XEMOTION_PROBE_CACHE`` names another folder, or turns the cache off with ``0``.
The cache is used only when every folder on its path is a real folder (no symbolic link) owned by root
or this user and writable by no one else (a sticky folder such as /tmp excepted), the cache folder
itself and its entries this user's own; it is created 0700, holds at most ``CACHE_ENTRIES`` entries
(the least recently used go first), each written atomically and read back only if it is a regular
file of this user's that names the very key asked for. Anything else means: probe again. Whoever can
write that folder (this user, root) can make a file skip its probe. An ONNX file with external data
(tensors in other files, which the hash does not cover) is probed at every open and loaded by path.

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

import _thread
import os
import stat
import sys
from typing import IO, TYPE_CHECKING, Any

from xruntime_emotion import errors
from xruntime_emotion._version import __version__
from xruntime_emotion.errors import ModelFileError, UnsafeModelError
from xruntime_emotion.util import env_number, read_bounded, sha256

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

PROBED_BY_DEFAULT: frozenset[str] = frozenset({".tflite", ".onnx"})  # file kinds (see backends.file_kind)
PROBE_TIMEOUT_S = 10.0  # the default wall-clock bound of one probe; $XEMOTION_PROBE_TIMEOUT overrides
PROBE_MEMORY_BYTES = 4 << 30  # address space of a checker: a file asking for more is refused, not obeyed
MAX_MODEL_BYTES = 512 * 2**20  # larger files are refused before a byte is read; $XEMOTION_MAX_MODEL_BYTES
CACHE_ENV = "XEMOTION_PROBE_CACHE"  # "0": no cache across processes; a folder: the cache lives there
CACHE_ENTRIES = 256  # verdicts kept on disk; the least recently used go first
PROBE_SCHEME = 1  # bump when what a probe checks changes, so that older verdicts no longer count

_lock = _thread.allocate_lock()  # threading's Lock; threading itself is not imported for it at start-up
_passed: set[str] = set()  # names of the verdicts that passed in this process


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # holds xruntime_emotion/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # a single-threaded server forks safely
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _read_line(fd: int, timeout: float) -> bytes | None:
    """One line from ``fd`` within ``timeout`` seconds; None on timeout or end of file."""
    import select

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


def _sigalrm() -> int:
    import signal

    return int(getattr(signal, "SIGALRM", 14))


class _Server:
    """The fork server: one request at a time (callers hold ``_lock``)."""

    def __init__(self) -> None:
        import subprocess
        import tempfile

        self.err: IO[bytes] = tempfile.TemporaryFile()
        self.owner = os.getpid()
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-m", "xruntime_emotion.runtime._probe", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=_env(),
            start_new_session=True,  # Ctrl-C in the terminal is for the host
        )
        import atexit

        atexit.unregister(shutdown)  # once, however often a server is started
        atexit.register(shutdown)

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        import json

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
        import contextlib
        import signal
        import subprocess

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
            return {"ok": False, "signal": _sigalrm()}
        why = _server.stderr()
        _server.close()
        _server = None
    raise ModelFileError(
        f"could not start the probe process ({why or 'no answer'}); pass probe=False to load the file without it"
    )


def _ask_once(request: dict[str, Any]) -> dict[str, Any]:
    """A fresh Python per probe, for platforms without fork."""
    import json
    import subprocess

    cmd = [sys.executable, "-m", "xruntime_emotion.runtime._probe", "--once"]
    try:
        done = subprocess.run(
            cmd, input=json.dumps(request).encode(), capture_output=True, env=_env(), timeout=request["timeout"]
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "signal": _sigalrm()}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode == 0 and lines:
        return dict(json.loads(lines[-1]))
    stderr = done.stderr.decode(errors="replace").strip()[-300:]
    if done.returncode < 0:
        return {"ok": False, "signal": -done.returncode, "stderr": stderr}
    return {"ok": False, "exit": done.returncode, "stderr": stderr}


def _refusal(path: str, runtime: str, answer: dict[str, Any], timeout: float) -> ModelFileError:
    import signal

    detail = f" ({answer['stderr']})" if answer.get("stderr") else ""
    if "signal" in answer:
        sig = int(answer["signal"])
        if sig == _sigalrm():
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


def max_model_bytes() -> int:
    """The largest model file opened: $XEMOTION_MAX_MODEL_BYTES, else ``MAX_MODEL_BYTES``."""
    return int(env_number("XEMOTION_MAX_MODEL_BYTES", MAX_MODEL_BYTES, 0, 2**40))


def read_model_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a model file (``check_model_file``), read through the one door (``util.read_bounded``):
    what is read is the regular file that was checked, even if the name is swapped meanwhile."""
    check_model_file(path)
    return read_bounded(path, max_model_bytes(), error=ModelFileError, what="the model")


def check_model_file(path: str | os.PathLike[str]) -> int:
    """The size of ``path`` once it is known to be a regular file of a sane size; nothing is read."""
    limit = max_model_bytes()
    try:
        st = os.stat(path)
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


# -- ONNX external data ----------------------------------------------------------------------------------
# Where a TensorProto can sit in an ONNX file: message -> {field number: message of that field}
# (onnx.proto: ModelProto, GraphProto, NodeProto, AttributeProto, FunctionProto, TrainingInfoProto,
# SparseTensorProto). A TensorProto with external_data (13) or data_location EXTERNAL (14 = 1) has data
# in another file.
_ONNX_FIELDS: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_MAX_FIELDS = 1 << 21  # a file with more fields than this is not parsed: taken as having external data


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def has_external_data(data: bytes) -> bool:
    """Whether an ONNX file keeps tensors in other files; True too when its bytes do not parse as ONNX's
    protobuf (such a file is not cached nor loaded from memory: the runtime judges it at every open)."""
    stack = [("model", 0, len(data))]
    seen = 0
    try:
        while stack:
            kind, i, end = stack.pop()
            children = _ONNX_FIELDS[kind]
            while i < end:
                tag, i = _varint(data, i)
                field, wire = tag >> 3, tag & 7
                seen += 1
                if seen > _MAX_FIELDS:
                    return True
                if wire == 0:
                    value, i = _varint(data, i)
                    if kind == "tensor" and field == 14 and value == 1:
                        return True
                elif wire == 2:
                    n, i = _varint(data, i)
                    if i + n > end:
                        return True
                    if kind == "tensor" and field == 13:
                        return True
                    if field in children:
                        stack.append((children[field], i, i + n))
                    i += n
                elif wire in (1, 5):
                    i += 8 if wire == 1 else 4
                else:
                    return True
            if i != end:
                return True
    except (IndexError, ValueError):  # cut short, or a varint past 64 bits
        return True
    return False


# -- the verdict cache -----------------------------------------------------------------------------------
def cache_folder() -> str | None:
    """Where verdicts are kept across processes: ``$XEMOTION_PROBE_CACHE`` (``0`` for nowhere), else
    ``xemotion/probe`` in ``$XDG_CACHE_HOME`` or ``~/.cache``. None where the platform has no user ids."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw.lower() in ("0", "off", "no", "false") or not hasattr(os, "geteuid"):
        return None
    if raw and raw.lower() not in ("1", "on", "yes", "true"):
        return os.path.abspath(os.path.expanduser(raw))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        base = xdg
    else:  # a relative one is ignored (XDG)
        home = os.path.expanduser("~")
        if not os.path.isabs(home):  # no home folder
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(os.path.abspath(base), "xemotion", "probe")


def _euid() -> int:
    return os.geteuid()


def _safe_folder(folder: str, *, create: bool) -> bool:
    """Whether ``folder`` can hold verdicts: it and every folder above it a real folder (no link), owned by
    root or this user and writable by no one else (sticky folders excepted); ``folder`` itself this user's.
    ``create``: make the missing ones, 0700."""
    me = _euid()
    parts = [os.sep] + [p for p in folder.split(os.sep) if p]  # from the root down; ``folder`` is absolute
    for n in range(1, len(parts) + 1):
        here = os.path.join(*parts[:n])
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            if not create:
                return False
            try:
                os.mkdir(here, 0o700)
                st = os.lstat(here)
            except OSError:
                return False
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):  # a link (lstat does not follow it) or a file
            return False
        last = n == len(parts)
        if st.st_uid != me and (last or st.st_uid != 0):
            return False
        if st.st_mode & 0o022 and (last or not st.st_mode & stat.S_ISVTX):
            return False
    return True


def _key(digest: str, runtime: str, options: dict[str, Any], spec: dict[str, Any], timeout: float) -> str:
    """The canonical text of everything a verdict depends on: one ``name: value`` line per item, in name order,
    each value a Python literal (dicts in key order), so that equal keys are equal texts."""
    delegate = options.get("delegate")
    items = {
        "scheme": PROBE_SCHEME,
        "sha256": digest,
        "runtime": runtime,
        "versions": runtime_versions(spec),
        "options": options,
        "delegate": _file_identity(delegate) if isinstance(delegate, str) else None,
        "spec": spec,
        "timeout": timeout,
        "memory": PROBE_MEMORY_BYTES,
        "platform": [sys.platform, os.uname().machine if hasattr(os, "uname") else "", sys.version],
        "xemotion": __version__,
    }
    return "".join(f"{name}: {_literal(items[name])}\n" for name in sorted(items))


def _literal(value: Any) -> str:
    """``value`` as one line of Python literal: dicts in key order, tuples as lists, other objects as strings."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(str(k))}: {_literal(value[k])}" for k in sorted(value, key=str)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_literal, value)) + "]"
    if value is None or isinstance(value, (str, int, float)):  # bools are ints
        return repr(value)
    return repr(str(value))


def _file_identity(path: str) -> list[Any]:
    """A file (a delegate library) as its path, size and modification time: another build is another key."""
    try:
        st = os.stat(path)
    except OSError:
        return [path]  # a bare name, found by dlopen's search path
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def runtime_versions(spec: dict[str, Any]) -> dict[str, list[Any]]:
    """Each installed module that provides a runtime (``spec``: its registry row): its ``__version__`` and
    its file's identity (another install, or a reinstall, of the same version is another key too). The
    modules are imported, as the backend would import them."""
    import importlib
    import importlib.util

    out: dict[str, list[Any]] = {}
    for name in spec.get("probe") or ():
        try:
            if importlib.util.find_spec(name) is None:
                continue
            module = importlib.import_module(name)
        except (ImportError, ValueError):
            continue
        out[name] = [str(getattr(module, "__version__", "")), _file_identity(str(getattr(module, "__file__", "")))]
    return out


_VERDICT = "xemotion probe verdict: passed\n"  # an entry is this line, then its key (``_key``)
_MAX_ENTRY = 1 << 16


def _entry_name(key: str) -> str:
    return sha256(key.encode()).hexdigest()


def _cached(name: str, key: str) -> bool:
    """Whether the cache holds a pass for ``key``: an entry whose bytes are exactly the verdict line and this
    key. Anything odd about the cache or the entry is a no."""
    folder = cache_folder()
    if folder is None or not _safe_folder(folder, create=False):
        return False
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(os.path.join(folder, name), flags)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != _euid() or st.st_mode & 0o022 or st.st_size > _MAX_ENTRY:
            return False
        if os.read(fd, _MAX_ENTRY + 1) != (_VERDICT + key).encode():
            return False
        try:
            os.utime(fd)  # recently used: kept longest
        except OSError:
            pass
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _remember(name: str, key: str) -> None:
    """Record a pass, atomically (a private temporary file renamed into place); best effort."""
    import contextlib
    import tempfile

    folder = cache_folder()
    if folder is None or not _safe_folder(folder, create=True):
        return
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=folder)  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write((_VERDICT + key).encode())
            os.replace(tmp, os.path.join(folder, name))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _trim(folder)


def _trim(folder: str) -> None:
    """Keep the ``CACHE_ENTRIES`` most recently used verdicts, and no temporary file older than an hour."""
    import time

    verdicts, stale = [], []
    for e in os.scandir(folder):
        try:
            mtime = e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if len(e.name) == 64:
            verdicts.append((mtime, e.path))
        elif e.name.endswith(".part") and mtime < time.time() - 3600:  # its writer was killed
            stale.append(e.path)
    for path in stale + [p for _, p in sorted(verdicts)[: max(0, len(verdicts) - CACHE_ENTRIES)]]:
        try:
            os.unlink(path)
        except OSError:
            continue


# -- the probe -------------------------------------------------------------------------------------------
def probe(
    path: str | Path, runtime: str, *, timeout: float | None = None, spec: dict[str, Any] | None = None, **options: Any
) -> bytes:
    """Check ``path`` with ``runtime`` in a helper process (module docstring); return the checked bytes.

    ``options`` are the backend's (a delegate, say), JSON-serialisable; thread counts are not passed.
    ``timeout``: seconds (default ``probe_timeout()``). ``spec``: the runtime's registry row (``open_backend``
    passes it), which the helper registers too where the runtime is a plug-in of this process only. A pass is
    remembered in this process, and with ``spec`` in the probe cache too (module docstring), unless the file is
    an ONNX file with external data (``has_external_data``).
    """
    path = os.fspath(path)
    data = read_model_file(path)
    digest = sha256(data).hexdigest()
    options = {k: v for k, v in options.items() if k not in ("threads", "num_threads", "model_content")}
    timeout = probe_timeout() if timeout is None else timeout
    onnx = ".onnx" in spec["suffixes"] if spec is not None else data[4:8] != b"TFL3"
    external = onnx and has_external_data(data)
    key = _key(digest, runtime, options, spec or {}, timeout)
    name = _entry_name(key)
    request = {
        "path": os.path.realpath(path),
        "sha256": digest,
        "runtime": runtime,
        "options": options,
        "timeout": timeout,
        "memory": PROBE_MEMORY_BYTES,
        "external": external,
        "spec": spec,
    }
    with _lock:
        if not external and (name in _passed or spec is not None and _cached(name, key)):
            _passed.add(name)
            return data
        answer = _ask_server(request) if hasattr(os, "fork") else _ask_once(request)
        if answer.get("ok"):
            if not external:  # its other files are not hashed: probed again at every open
                _passed.add(name)
                if spec is not None:  # the runtime's versions are known: the verdict may outlive this process
                    _remember(name, key)
            return data
    raise _refusal(path, runtime, answer, timeout)


def shutdown() -> None:
    """Stop the fork server (it also stops by itself when this process exits)."""
    global _server
    with _lock:
        if _server is not None and _server.owner == os.getpid():
            _server.close()
        _server = None
