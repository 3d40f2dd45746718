"""Packages of the wheel. In pyproject.toml's terms this is `packages.find` plus one mapped package,
which pyproject.toml cannot say: the top-level configs/ ships as `mlpscale._configs` (its *.yaml and
sweeps/*.yaml as package data), found with importlib.resources from a wheel and from a checkout."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["mlpscale", "mlpscale.*", "data_prep", "data_prep.*"]) + ["mlpscale._configs"],
    package_dir={"mlpscale._configs": "configs"},
    package_data={"mlpscale": ["py.typed"], "mlpscale._configs": ["*.yaml", "sweeps/*.yaml"]},
)
