import pytest


@pytest.fixture(autouse=True)
def _hermetic_cwd(tmp_path, monkeypatch):
    """Every test runs in its own temporary folder: relative defaults (runs/, data/) never reach the
    repository, so `make test` passes after `make demo` and twice in a row."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    """scikit-learn's digits converted once per test session at 8x8 (train 1437, test 360)."""
    from data_prep.cli import main

    root = tmp_path_factory.mktemp("data")
    main(["digits", "--res", "8", "--out", str(root), "--workers", "1", "--quiet"])
    return str(root)
