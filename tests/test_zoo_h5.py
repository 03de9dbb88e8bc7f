"""Which config entries of larq-zoo's saved models the loader's scan lets through."""

import pytest

from edgebnn.modelcheck import allowed_objects, scan_config


def _model(layer):
    return {"class_name": "Functional", "config": {"name": "m", "layers": [layer]}}


@pytest.fixture(scope="module")
def allowed():
    return allowed_objects()


def test_tfoplambda_add_is_allowed(allowed):
    """QuickNet's residual `x + y` is saved as TFOpLambda('__operators__.add'): a TF API name, no code."""
    layer = {"class_name": "TFOpLambda", "config": {"name": "tf.__operators__.add", "function": "__operators__.add"}}
    assert scan_config(_model(layer), allowed) == []


@pytest.mark.parametrize("fn", ["io.write_file", "py_function", None])
def test_tfoplambda_other_functions_are_refused(allowed, fn):
    layer = {"class_name": "TFOpLambda", "config": {"name": "op", "function": fn}}
    findings = scan_config(_model(layer), allowed)
    assert len(findings) == 1 and "TFOpLambda" in str(findings[0]) and repr(fn) in str(findings[0])


def test_function_from_unknown_module_is_refused(allowed):
    layer = {"class_name": "Conv2D", "module": "keras.layers",
             "config": {"name": "c", "kernel_initializer": {"class_name": "function", "config": "evil",
                                                            "module": "evil_pkg.init"}}}
    findings = scan_config(_model(layer), allowed)
    assert len(findings) == 1 and "evil_pkg.init" in str(findings[0])


def test_lambda_is_still_refused(allowed):
    layer = {"class_name": "Lambda", "config": {"name": "l", "function": "x"}}
    assert any("Lambda" in str(f) for f in scan_config(_model(layer), allowed))
