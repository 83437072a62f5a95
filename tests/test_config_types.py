"""Every method refuses a ``--set`` value of the wrong type at one boundary (the contract's config check), naming
key, expected type and the value given -- never a bare TypeError from deep inside the method."""
from __future__ import annotations

import pytest

from bench.harness.method import ConfigTypeError, check_config_types
from bench.harness.registry import get_spec, load_method_class

# a numeric key of each built-in method, given text (as a `--set n=many` typo arrives)
WRONG = {"gnr": "n_samples", "pixelnerf": "n_coarse", "ibrnet": "n_samples", "nhp": "n_coarse",
         "mesh-blend": "angle_sharpness"}


@pytest.mark.parametrize("method_id", sorted(WRONG))
def test_wrong_type_is_refused_naming_key_type_and_value(method_id):
    cls = load_method_class(get_spec(method_id))
    key = WRONG[method_id]
    with pytest.raises(ConfigTypeError) as err:
        cls(config_overrides={key: "many"})
    assert f"'{key}'" in str(err.value) and "'many'" in str(err.value) and method_id in str(err.value)
    assert err.value.key == key


def test_type_rules():
    defaults = {"n": 4, "lr": 1e-3, "on": True, "name": "x", "skips": (4,), "opt": None}
    check_config_types(defaults, {"n": 8, "lr": 1, "on": False, "name": "y", "skips": [2, 4], "opt": 3}, "m")
    check_config_types(defaults, {"n": None}, "m")  # None stands for "unset" everywhere
    for key, value, expected in [("n", 2.5, "an integer"), ("n", True, "an integer"), ("lr", "fast", "a number"),
                                 ("on", 1, "a boolean"), ("name", 3, "a string"), ("skips", 4, "a list")]:
        with pytest.raises(ConfigTypeError, match=expected):
            check_config_types(defaults, {key: value}, "m")
