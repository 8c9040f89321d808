"""validate_config: every bad value gives one ConfigError naming the field, the value and what is allowed."""
import json
import os

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

import jaxdiff.config as cv
from jaxdiff.config import ConfigError, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cfg(name="cold_blur", variant=""):
    path = os.path.join(ROOT, "configs", f"{name}.py")
    return cv.load_config_file(f"{path}:{variant}" if variant else path)


def override(config, dotted, value):
    *head, last = dotted.split(".")
    node = config
    for h in head:
        node = node[h]
    with config.unlocked(), config.ignore_type():  # a test may add a key the locked config refuses
        node[last] = value
    return config


def leaf_paths(node, prefix=""):
    out = set()
    for k, v in node.items():
        path = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict) and path not in cv.FREE_FORM:
            out |= leaf_paths(v, path + ".")
        else:
            out.add(path)
    return out


def test_fields_cover_exactly_the_default_layout():
    default = cv.load_config_file(os.path.join(ROOT, "configs", "default.py"))
    assert leaf_paths(default) == set(cv.FIELDS)


def test_default_config_is_valid():
    validate_config(cv.load_config_file(os.path.join(ROOT, "configs", "default.py")), num_devices=8)


# (config file, field, bad value, a piece of the "allowed" text); the error must name exactly that field.
BAD = [
    ("cold_blur", "diffusion.schedule", "hot", "'sigmoid', 'constant', 'flow', 've'"),
    ("cold_blur", "diffusion.degradation", "blurr", "'blur'"),
    ("ddpm", "diffusion.schedule", "cosin", "'cosine'"),
    ("ddpm", "diffusion.prediction", "epsilon", "'eps', 'x0', 'v'"),
    ("cold_blur", "diffusion.loss", "huber", "'l1', 'l2'"),
    ("ddpm", "sample.corrector", "lms", "'ddpm', 'blurring_ddpm', 'ddim', 'cold_improved'"),
    ("cold_blur", "diffusion.T", 0, "integer >= 1"),
    ("cold_blur", "diffusion.T", 20.0, "integer >= 1"),
    ("ddim", "sample.steps", 1001, "[0, diffusion.T=1000]"),
    ("ddim", "sample.steps", -1, "integer >= 0"),
    ("cold_blur", "diffusion.prediction", "eps", "'x0' for cold diffusion, blur("),
    ("cold_blur", "sample.corrector", "dpmpp_2m", "for cold diffusion, blur("),
    ("cold_blur", "diffusion.loss_weighting", "min_snr", "'none' or 'soft' here"),
    ("heat", "diffusion.prediction", "eps", "'x0', 'v' for cold diffusion, heat("),
    ("ddim", "diffusion.t_sampling", "beta", "'uniform', 'logit_normal', 'log_normal'"),
    ("edm", "diffusion.t_sampling_params.std", -1.0, "std must be a finite number > 0"),
    ("flow", "diffusion.prediction", "eps", "needs α_t·D_t invertible"),
    ("flow", "diffusion.schedule_params.shift", 0.0, "finite number > 0"),
    ("edm", "diffusion.schedule_params.sigma_max", 0.001, "must be > the lowest level 0.002"),
    ("cold_blur", "sample.spacing", "karras", "grow with t"),
    ("cold_blur", "data.image_size", 18, "2**(len(model.ch_mult)-1) = 4"),
    ("cold_blur", "model.num_groups", 12, "divisor of every UNet width"),
    ("cold_blur", "model.attn_resolutions", (5,), "resolutions (16, 8, 4)"),
    ("cold_blur", "model.ch_mult", (), "non-empty tuple"),
    ("cold_blur", "model.dropout", 1.0, "[0, 1)"),
    ("cold_blur", "train.batch_size", 60, "multiple of the number of devices (8)"),
    ("cold_blur", "train.ema_decay", 1.0, "[0, 1)"),
    ("cold_blur", "train.ema_decay", -0.1, "[0, 1)"),
    ("cold_blur", "train.ema_every", 0, "integer >= 1"),
    ("cold_blur", "train.learning_rate", 0.0, "> 0"),
    ("cold_blur", "train.learning_rate", float("nan"), "> 0"),
    ("cold_blur", "train.warmup_steps", -5, "integer >= 0"),
    ("cold_blur", "train.num_steps", 0, "integer >= 1"),
    ("cold_blur", "train.checkpoint_every", 0, "integer >= 1"),
    ("cold_blur", "train.log_every", 0, "integer >= 1"),
    ("cold_blur", "train.distributed", "yes", "True or False"),
    ("cold_blur", "data.channels", 2, "1 (grey) or 3 (RGB)"),
    ("cold_blur", "data.channels", 3, "1 for data.source='digits'"),
    ("cold_decolor", "data.channels", 1, "3 for data.source='photos' (RGB images)"),  # their default source
    ("cold_snow", "data.channels", 1, "3 for data.source='photos' (RGB images)"),
    ("cold_blur", "data.source", "imagenet", "'digits' or 'tfds:<name>'"),
    ("cold_animorph", "data.source", "digits:classes=3-11", "labels in 0..9"),
    ("cold_animorph", "data.end_source", "", "required by diffusion.degradation='interpolate'"),
    ("cold_blur", "data.end_source", "digits", "'' unless diffusion.degradation='interpolate'"),
    ("cold_blur", "diffusion.degradation_params.routine", "gaussian", "'constant', 'incremental', 'exponential', 'affine'"),
    ("cold_blur", "diffusion.degradation_params.kernel_size", 4, "odd"),
    ("cold_blur", "diffusion.degradation_params.sigma", 2.0, "a parameter of 'blur'"),
    ("cold_inpaint", "diffusion.degradation_params.kernel_std", -0.1, "number > 0"),
    ("cold_superres", "diffusion.degradation_params.method", "lanczos", "'area'"),
    ("cold_superres", "diffusion.T", 5, "<= 4 for diffusion.degradation='superres'"),
    ("ddpm", "diffusion.schedule_params.beta_edn", 0.02, "a parameter of schedule 'linear'"),
    ("cold_blur", "diffusion.degradation_params.std", -1.0, "number > 0"),
    ("cold_blur", "diffusion.schedule_params.std", -1.0, "finite number >= 0"),
    ("ddim", "diffusion.degradation", "identiy", "did you mean 'identity'"),
    ("ddim", "sample.eta", 1.5, "[0, 1]"),
    ("cold_blur", "model.dtype", "float64", "'float32'"),
    ("cold_blur", "seed", -1, "[0, 4294967295]"),
]


@pytest.mark.parametrize("name,field,value,allowed", BAD, ids=[f"{f}={v!r}" for _, f, v, _ in BAD])
def test_bad_value_names_the_field(name, field, value, allowed):
    config = override(cfg(name), field, value)
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.fields == [field], str(err)
    msg = str(err)
    assert f"{field}={value!r}" in msg
    assert allowed in msg


@pytest.mark.parametrize("name", ["cold_decolor", "cold_snow"])
def test_color_only_config_on_grey_data_of_unknown_channels_is_refused(name):
    config = override(override(cfg(name), "data.source", "npz:/grey.npz"), "data.channels", 1)
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    assert info.value.fields == ["data.channels"]
    assert "needs color images" in str(info.value)


def test_a_value_allowed_for_gaussian_is_refused_for_cold_and_vice_versa():
    validate_config(override(cfg("ddpm"), "sample.corrector", "cold_improved"), num_devices=8)  # gaussian: allowed
    with pytest.raises(ConfigError):
        validate_config(override(cfg("cold_blur"), "sample.corrector", "ddpm"), num_devices=8)


def test_all_problems_in_one_error():
    config = cfg()
    override(config, "diffusion.T", -3)
    override(config, "train.learning_rate", -1.0)
    override(config, "model.num_groups", 5)
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    assert sorted(info.value.fields) == ["diffusion.T", "model.num_groups", "train.learning_rate"]
    assert "3 problems" in str(info.value)


def test_unknown_and_missing_fields():
    config = cfg()
    with config.unlocked():
        config.train.num_step = 10  # a typo in a config file
        del config.sample["eta"]
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    msg = str(info.value)
    assert set(info.value.fields) == {"train.num_step", "sample.eta"}
    assert "did you mean 'train.num_steps'" in msg
    assert "sample.eta=<missing>" in msg


def test_batch_must_split_over_devices_and_processes():
    config = override(cfg(), "train.batch_size", 24)
    validate_config(config, num_devices=8)
    with pytest.raises(ConfigError, match=r"train.batch_size=24 .*number of devices \(16\)"):
        validate_config(config, num_devices=16)
    with pytest.raises(ConfigError, match=r"train.batch_size=24 .*number of processes \(5\)"):
        validate_config(config, num_devices=8, process_count=5)
    with pytest.raises(ConfigError, match=r"devices \(8\)"):  # default: jax.device_count(), 8 in conftest
        validate_config(override(cfg(), "train.batch_size", 20))
    with pytest.raises(ValueError, match="num_devices=0"):
        validate_config(cfg(), num_devices=0)


def test_plain_nested_dicts_from_json_are_validated():
    """A config restored from a checkpoint's JSON: tuples are lists, sections are dicts."""
    raw = json.loads(json.dumps(cfg("cold_blur", "cifar10").to_dict()))
    validate_config(raw, num_devices=8)
    raw["train"]["ema_decay"] = 2.0
    with pytest.raises(ConfigError, match=r"train.ema_decay=2.0"):
        validate_config(raw, num_devices=8)


def test_builder_error_naming_several_parameters_blames_the_section():
    config = override(cfg("ddpm"), "diffusion.schedule_params.beta_start", 0.5)  # > beta_end
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    assert info.value.fields == ["diffusion.schedule_params"]
    assert "beta_start" in str(info.value) and "beta_end" in str(info.value)


@pytest.mark.parametrize(
    "arg,expected",
    [
        ("configs/cold_blur.py:mnist", ("cold_blur", "mnist")),
        ("configs/cold_blur.py", ("cold_blur", "")),
        ("/abs/path/ddim.py:celeb_a", ("ddim", "celeb_a")),
        ("ddpm.py:a:b", ("ddpm", "a:b")),  # like ml_collections: split at the first colon
    ],
)
def test_config_name_and_variant(arg, expected):
    assert cv.config_name_and_variant(arg) == expected


def test_default_workdir():
    assert cv.default_workdir("configs/cold_blur.py:mnist") == os.path.join("workdirs", "cold_blur_mnist")
    assert cv.default_workdir("configs/ddpm.py", root="w") == os.path.join("w", "ddpm")
    with pytest.raises(ValueError):
        cv.config_name_and_variant(":mnist")


def _parse(argv):
    """parse_flags on a fresh FlagValues; ml_collections reads the override names from ``sys_argv``."""
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=fv, sys_argv=argv)
    cv.parse_flags(argv, flag_values=fv)
    return fv


def test_parse_flags_accepts_good_overrides():
    path = os.path.join(ROOT, "configs", "cold_blur.py")
    fv = _parse(["prog", f"--config={path}:mnist", "--config.train.num_steps=7"])
    assert fv.config.train.num_steps == 7 and fv.config.diffusion.T == 20


@pytest.mark.parametrize(
    "override_arg,needle",
    [
        ("--config.train.num_stepz=3", "unknown config field 'train.num_stepz'; did you mean 'train.num_steps'?"),
        ("--config.trian.num_steps=3", "unknown config field 'trian'; did you mean 'train'?"),
        ("--config.diffusion.degradation_params.stdd=1.0", "did you mean 'diffusion.degradation_params.std'?"),
    ],
)
def test_parse_flags_turns_a_typo_into_one_line(capsys, override_arg, needle):
    path = os.path.join(ROOT, "configs", "cold_blur.py")
    with pytest.raises(SystemExit) as info:
        _parse(["prog", f"--config={path}", override_arg])
    assert info.value.code == 2  # a bad config: train.py's exit code 2 (docs/RELIABILITY.md)
    err = capsys.readouterr().err
    assert err.startswith("FATAL Flags parsing error: ") and needle in err
    assert "Traceback" not in err


def test_parse_flags_bad_variant_and_missing_file(capsys):
    path = os.path.join(ROOT, "configs", "cold_blur.py")
    with pytest.raises(SystemExit):
        _parse(["prog", f"--config={path}:mnst"])
    err = capsys.readouterr().err
    assert "unknown variant 'mnst'" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        _parse(["prog", f"--config={path[:-6]}blr.py"])
    err = capsys.readouterr().err
    assert "no such file; did you mean" in err and "cold_blur.py" in err


# --- locked configs, overrides of every declared parameter, old keys ------------------------------------------


def test_configs_are_locked_with_ml_collections_did_you_mean():
    config = cfg()
    with pytest.raises(AttributeError, match="num_steps"):
        config.train.num_step = 10
    with pytest.raises(TypeError):
        config.train.num_steps = "ten"


def test_an_undeclared_blur_parameter_is_overridable(capsys):
    """The reported bug: to_mean is a documented blur parameter the config file does not name."""
    path = os.path.join(ROOT, "configs", "cold_blur.py")
    fv = _parse(["prog", f"--config={path}", "--config.diffusion.degradation_params.to_mean=True"])
    assert fv.config.diffusion.degradation_params.to_mean is True
    assert fv.config.diffusion.degradation_params.kernel_size == 5  # the file's value is kept
    validate_config(fv.config, num_devices=8)


@pytest.mark.parametrize(
    "override_arg,needle",
    [
        ("--config.sample.sampler=ddim", "'sample.sampler' was renamed to 'sample.corrector'"),
        ("--config.sample.prior=gmm", "'sample.prior' was removed"),
        ("--config.data.shuffle_buffer=10", "'data.shuffle_buffer' was removed"),
        ("--config.train.num_steps=ten", "--config.train.num_steps=ten"),
        ("--config.diffusion.degradation_params.to_mena=True", "did you mean 'diffusion.degradation_params.to_mean'?"),
    ],
)
def test_old_unknown_or_mistyped_overrides_are_one_line_and_exit_2(capsys, override_arg, needle):
    path = os.path.join(ROOT, "configs", "cold_blur.py")
    with pytest.raises(SystemExit) as info:
        _parse(["prog", f"--config={path}", override_arg])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("FATAL Flags parsing error: ") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_flag_that_is_not_about_the_config_keeps_absls_usage_status(capsys):
    fv = flags.FlagValues()
    argv = ["prog", f"--config={os.path.join(ROOT, 'configs', 'cold_blur.py')}", "--workdri=x"]
    config_flags.DEFINE_config_file("config", None, flag_values=fv, sys_argv=argv)
    with pytest.raises(SystemExit) as info:
        cv.parse_flags(argv, flag_values=fv)
    assert info.value.code == 1 and "workdri" in capsys.readouterr().err


def test_old_keys_in_a_config_name_their_new_home():
    raw = cfg().to_dict()
    raw["sample"]["sampler"] = raw["sample"].pop("corrector")
    with pytest.raises(ConfigError) as info:
        validate_config(raw, num_devices=8)
    assert set(info.value.fields) == {"sample.sampler", "sample.corrector"}
    assert "sample.sampler='cold_improved' is invalid; allowed: renamed to 'sample.corrector'" in str(info.value)


def test_train_py_refuses_a_typo_in_one_line_with_exit_2(tmp_path):
    import subprocess
    import sys

    wd = tmp_path / "w"
    r = subprocess.run([sys.executable, "train.py", "--config=configs/cold_blur.py",
                        "--config.diffusion.degradation_params.stdd=1.0", f"--workdir={wd}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "FATAL Flags parsing error: --config.diffusion.degradation_params.stdd=1.0: unknown config field "
        "'diffusion.degradation_params.stdd'; did you mean 'diffusion.degradation_params.std'? (fields of "
        "diffusion.degradation_params: kernel_size, padding, routine, std, std_increment, to_mean)"]
    assert not wd.exists()


# --- names and facts come from the registries ---------------------------------------------------------------


@pytest.fixture
def toy_degradation():
    """A degradation registered here only: color-only, needing an end data set, with one parameter."""
    from jaxdiff.degradations import DEGRADATIONS, register_degradation

    @register_degradation("toy_h3", color_only=True, needs_end_source=True)
    def toy(*, T, image_size=32, channels=3, strength=0.5):
        if not 0 < strength <= 1:
            raise ValueError(f"degradation 'toy_h3': strength must be in (0, 1], got {strength!r}")
        return lambda x0, t, aux=None: x0

    yield "toy_h3"
    DEGRADATIONS.unregister("toy_h3")


def _toy_config(**data):
    c = cfg()
    with c.unlocked(), c.ignore_type():
        c.diffusion.degradation = "toy_h3"
        c.diffusion.degradation_params = cv.degradation_params("toy_h3")
        for k, v in data.items():
            c.data[k] = v
    return c


def test_a_newly_registered_degradation_is_accepted_with_its_declared_params(toy_degradation):
    c = _toy_config(source="npz:/x/rgb.npz", channels=3, end_source="npz:/x/other.npz")
    assert c.diffusion.degradation_params.to_dict() == {"strength": 0.5}
    validate_config(c, num_devices=8)


def test_a_newly_registered_degradation_brings_its_facts(toy_degradation):
    with pytest.raises(ConfigError) as info:
        validate_config(_toy_config(), num_devices=8)  # grey digits, no end source
    assert sorted(info.value.fields) == ["data.channels", "data.end_source"]
    msg = str(info.value)
    assert "3 for diffusion.degradation='toy_h3', which needs color images" in msg
    assert "required by diffusion.degradation='toy_h3'" in msg


def test_a_newly_registered_degradation_judges_its_own_params(toy_degradation):
    c = _toy_config(source="npz:/x/rgb.npz", channels=3, end_source="npz:/x/other.npz")
    with c.unlocked():
        c.diffusion.degradation_params.strength = 2.0
    with pytest.raises(ConfigError) as info:
        validate_config(c, num_devices=8)
    assert info.value.fields == ["diffusion.degradation_params.strength"]
    assert "strength must be in (0, 1], got 2.0" in str(info.value)


def test_an_unknown_degradation_lists_the_registered_ones(toy_degradation):
    with pytest.raises(ConfigError, match=r"diffusion.degradation='toyh3' is invalid; allowed: one of .*'toy_h3'"):
        validate_config(override(cfg(), "diffusion.degradation", "toyh3"), num_devices=8)
