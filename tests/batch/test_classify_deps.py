"""classify_table says it needs pyarrow before any work (it used to fail after inference had run)."""

from __future__ import annotations

import sys

import pytest

from xruntime_emotion.errors import MissingDependencyError


def test_classify_table_without_pyarrow_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import xruntime_emotion.batch as batch
    from xruntime_emotion import classify_table
    from xruntime_emotion.runtime.classifier import ModelSpec

    def no_work(*_a: object, **_k: object) -> None:
        raise AssertionError("work started before the dependency check")

    monkeypatch.setattr(ModelSpec, "open", no_work)
    monkeypatch.setattr(batch, "open_source", no_work)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'xemotion\[classify\]'"):
        classify_table("examples/crops/")
