"""Fixtures shared by tests/unit (in-process, fast: `make test-fast`) and tests/integration (processes,
faults, studies). Plain helpers are in util.py."""
import pytest

from util import TinyConfig


@pytest.fixture(autouse=True)
def _hermetic_cwd(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: relative defaults (runs/, data/) never reach the
    repository, so `make test` passes after `make demo` and twice in a row."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tmpdir_under_tmp_path(tmp_path, monkeypatch):
    """Temporary folders (run folders, generated betons, worker processes' files) under tmp_path."""
    import tempfile

    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    """scikit-learn's digits converted once per test session at 8x8 (train 1437, test 360)."""
    from data_prep.cli import main

    root = tmp_path_factory.mktemp("data")
    main(["digits", "--res", "8", "--root", str(root), "--workers", "1", "--quiet"])
    return str(root)


@pytest.fixture
def tiny_config(digits_root, tmp_path):
    """The tests' one tiny training setup (util.TINY) on the session's digits, run folders under tmp_path:
    `tiny_config(name, *sets)` is a Config; `.argv(...)` its mlpscale-train arguments, `.sets(...)` its
    `--set` values, `.spec_set(...)` a sweep spec's `set:`; `finetune=True` for mlpscale-finetune's recipe."""
    return TinyConfig(digits_root, tmp_path)


@pytest.fixture(scope="session")
def betons(tmp_path_factory):
    """The digits scans at 8px as a raw and as a JPEG beton: {"raw": path, "jpg": path}."""
    from mlpscale.beton import write_arrays

    from util import digits_arrays

    d = tmp_path_factory.mktemp("betons")
    (x, y), _ = digits_arrays(8)
    out = {}
    for fmt in ("raw", "jpg"):
        out[fmt] = str(d / f"train_{fmt}.beton")
        write_arrays(out[fmt], x, y, fmt)
    return out
