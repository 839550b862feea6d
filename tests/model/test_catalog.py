"""xruntime_emotion.model.catalog: the deployment targets, as `xemotion targets` lists them."""

from __future__ import annotations

from helpers import run_cli


def test_targets_are_data() -> None:
    r = run_cli("targets")
    assert r.returncode == 0
    for word in ("cpu", "imx8mp", "imx93", "libvx_delegate.so", "libethosu_delegate.so"):
        assert word in r.stdout
