import pytest


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory):
    """scikit-learn's digits converted once per test session at 8x8 (train 1437, test 360)."""
    from data_prep.cli import build_parser, convert

    root = tmp_path_factory.mktemp("data")
    convert(build_parser().parse_args(["digits", "--res", "8", "--out", str(root), "--workers", "1"]))
    return str(root)
