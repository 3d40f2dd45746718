"""Configs from an installed package: the wheel ships configs/ (as `mlpscale._configs`), so a bare
config name (`--config demo_digits.yaml`) resolves from a non-editable install, not only a checkout."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install --no-deps --target T` of a copy of the project (the checkout stays untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for name in ("mlpscale", "data_prep", "configs"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True)
    return target


def test_wheel_ships_the_configs(installed):
    shipped = installed / "mlpscale" / "_configs"
    assert (shipped / "demo_digits.yaml").is_file() and (shipped / "sweeps" / "mini_cpu.yaml").is_file()
    names = {p.name for p in shipped.glob("*.yaml")}
    assert names == {p for p in os.listdir(os.path.join(ROOT, "configs")) if p.endswith(".yaml")}


def test_bare_config_name_resolves_from_an_installed_package(installed, tmp_path):
    code = ("import mlpscale, mlpscale.config as c\n"
            "print(mlpscale.__file__)\n"
            "print(c.resolve_config_path('demo_digits.yaml'))\n"
            "print(c.load_config('demo_digits').data.dataset)\n")
    env = {**os.environ, "PYTHONPATH": str(installed)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0].startswith(str(installed))  # the installed copy, not the checkout
    assert out[1] == str(installed / "mlpscale" / "_configs" / "demo_digits.yaml")
    assert out[2] == "digits"
