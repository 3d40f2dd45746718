import pytest
import yaml

from mlpscale.config import CONFIG_DIR, load_config, save_config
from mlpscale.errors import UserError


def write(tmp_path, text, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_defaults_follow_the_paper():
    c = load_config()
    assert c.optim.name == "lion" and c.optim.lr == 5e-5 and c.optim.label_smoothing == 0.3
    assert c.aug.mixup == 0.8 and c.aug.crop_scale == (0.08, 1.0) and c.aug.crop_ratio == pytest.approx((0.75, 4 / 3))


def test_yaml_values_and_types(tmp_path):
    c = load_config(write(tmp_path, "optim:\n  lr: 1e-5\ntrain:\n  epochs: 3\naug:\n  crop_scale: [0.35, 1]\n"))
    assert c.optim.lr == 1e-5 and isinstance(c.optim.lr, float)  # YAML reads 1e-5 as a string
    assert c.train.epochs == 3 and c.aug.crop_scale == (0.35, 1.0)
    assert c.run.name == "exp"  # run name defaults to the file's stem


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    p = write(tmp_path, "optim:\n  learning_rate: 1e-4\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert p in msg and "optim.learning_rate" in msg and "optim.lr" in msg and "optim.weight_decay" in msg


def test_unknown_section(tmp_path):
    with pytest.raises(UserError, match="unknown key 'optimizer'.*valid keys are data, model"):
        load_config(write(tmp_path, "optimizer:\n  lr: 1\n"))


def test_bad_value(tmp_path):
    with pytest.raises(UserError, match="train.epochs: bad value"):
        load_config(write(tmp_path, "train:\n  epochs: many\n"))


def test_override(tmp_path):
    c = load_config(write(tmp_path, "optim:\n  lr: 1e-3\n"), ["optim.lr=2e-4", "model.arch=B_12-Wi_1024",
                                                               "aug.enabled=false", "aug.crop_ratio=[1, 1]"])
    assert c.optim.lr == 2e-4 and c.model.arch == "B_12-Wi_1024" and c.aug.enabled is False
    with pytest.raises(UserError, match="unknown key 'optim.lrr'"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(UserError, match="section.field=value"):
        load_config(None, ["optim.lr"])


def test_round_trip(tmp_path):
    c = load_config(write(tmp_path, "model:\n  arch: S_6-Wi_1024\n"), ["aug.crop_scale=[0.2, 0.9]"])
    out = tmp_path / "config.yaml"
    save_config(c, out)
    assert yaml.safe_load(out.read_text())["model"]["arch"] == "S_6-Wi_1024"
    assert load_config(str(out)) == c


def test_bare_name_resolves_in_configs_dir():
    c = load_config("demo_digits.yaml")
    assert c.data.dataset == "digits"
    assert (CONFIG_DIR / "demo_digits.yaml").exists()
    with pytest.raises(UserError, match="not found.*available"):
        load_config("no_such_config.yaml")


def test_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(write(tmp_path, "optim: [unclosed\n"))


def test_every_shipped_config_loads():
    from mlpscale.models import parse_arch

    files = sorted(CONFIG_DIR.glob("*.yaml"))
    assert len(files) >= 21
    for f in files:
        c = load_config(str(f))
        parse_arch(c.model.arch)
        assert f.read_text().startswith("#"), f"{f.name} must say what it reproduces"


def test_bmlp12_is_the_imagenet21k_pretraining():
    c = load_config("bmlp12.yaml")
    assert (c.data.dataset, c.data.res, c.model.arch, c.train.batch_size, c.train.epochs) == \
        ("imagenet21k", 64, "B_12-Wi_1024", 16384, 800)


@pytest.mark.parametrize("setting", ["optim.lr=inf", "optim.weight_decay=inf", "optim.lr=nan",
                                     "aug.crop_ratio=[1,.inf]", "train.peak_tflops=-.inf"])
def test_non_finite_numbers_are_refused(setting):
    with pytest.raises(UserError, match=f"{setting.split('=')[0]}=.* must be a finite number"):
        load_config(None, [setting])
