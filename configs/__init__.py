"""The shipped configs: installed as the package `mlpscale._configs` (see setup.py), so that a bare
name such as `--config demo_digits.yaml` resolves from a wheel as well as from a checkout."""
