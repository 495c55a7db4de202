import pytest

from kerasapps.core.errors import ConfigError
from kerasapps.core.hparams import (
    HParam,
    dump_config,
    parse_assignments,
    read_config_file,
    resolve,
)

SCHEMA = {
    "epochs": HParam(5, int, minimum=1),
    "learning_rate": HParam(1e-3, float),
    "optimizer": HParam("adam", str, choices=("sgd", "adam")),
    "nesterov": HParam(False, bool),
    "clipnorm": HParam(None, float),
}


def test_defaults_then_file_then_set_then_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 7\nlearning_rate: 0.1\noptimizer: sgd\n")
    hp = resolve(SCHEMA, config_file=config, overrides=["learning_rate=0.5", "nesterov=true"], flags={"epochs": 9})
    assert hp.to_dict() == {"epochs": 9, "learning_rate": 0.5, "optimizer": "sgd", "nesterov": True, "clipnorm": None}


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as info:
        resolve(SCHEMA, overrides=["learning_rat=0.1"])
    message = str(info.value)
    assert "unknown key 'learning_rat'" in message and "did you mean learning_rate" in message
    assert "valid keys: clipnorm, epochs, learning_rate, nesterov, optimizer" in message


@pytest.mark.parametrize("assignment, fragment", [
    ("epochs=abc", "'epochs' expects int, got 'abc'"),
    ("epochs=2.5", "'epochs' expects int"),
    ("epochs=0", "'epochs' must be >= 1"),
    ("nesterov=maybe", "'nesterov' expects bool"),
    ("optimizer=lbfgs", "'optimizer' must be one of sgd, adam"),
    ("learning_rate=nan", "'learning_rate' expects float"),
    ("epochs", "--set expects key=value"),
])
def test_bad_values_are_one_line_errors(assignment, fragment):
    with pytest.raises(ConfigError) as info:
        resolve(SCHEMA, overrides=[assignment])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_optional_accepts_null_and_numbers():
    assert resolve(SCHEMA, overrides=["clipnorm=1"]).clipnorm == 1.0
    assert resolve(SCHEMA, overrides=["clipnorm=null"]).clipnorm is None


def test_dumped_config_round_trips(tmp_path):
    hp = resolve(SCHEMA, overrides=["epochs=3", "optimizer=sgd", "clipnorm=2.5"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_config("demo", hp, smoke=True))
    assert resolve(SCHEMA, config_file=path, recipe_name="demo") == hp
    with pytest.raises(ConfigError, match="is for recipe 'demo', not 'other'"):
        resolve(SCHEMA, config_file=path, recipe_name="other")


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML or JSON"):
        read_config_file(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(listing)


def test_json_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"epochs": 4, "nesterov": true}')
    assert resolve(SCHEMA, config_file=path).epochs == 4


def test_parse_assignments_keeps_equals_in_values():
    assert parse_assignments(["a=b=c"]) == {"a": "b=c"}
