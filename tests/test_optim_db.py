"""Each fact once: the registry record and the test record (tests/optim_db.py) name the same algorithms, a record
states only the paper's values that differ from the constructor's, and capabilities live on the class."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab import registry as R
from tests import optim_db as DB

ALL = optimlab.available()


def test_every_registered_algorithm_has_a_test_record_and_vice_versa():
    assert set(DB.DB) == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_record_states_no_default_equal_to_the_constructors(name):
    spec = optimlab.spec(name)
    ctor = R.constructor_defaults(spec.cls)
    restated = [k for k, v in spec.paper_defaults.items() if k in ctor and type(v) is type(ctor[k]) and v == ctor[k]]
    assert not restated, f"{name}: {restated} equal the constructor's defaults; leave them out of paper_defaults"


@pytest.mark.parametrize("name", ALL)
def test_defaults_are_the_constructors_overridden_by_the_paper(name):
    spec = optimlab.spec(name)
    ctor = R.constructor_defaults(spec.cls)
    assert list(spec.defaults) == list(spec.hparams)
    for key, value in spec.defaults.items():
        assert value == spec.paper_defaults.get(key, ctor.get(key)), key
    opt = spec.create([torch.zeros(2, 2, requires_grad=True)])
    for key, value in spec.defaults.items():
        if key in opt.defaults:
            assert opt.defaults[key] == value, key


def test_defaults_known_answer():
    assert optimlab.spec("sgd_nesterov").defaults == dict(
        lr=1e-2, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True
    )
    assert optimlab.spec("sgd_nesterov").paper_defaults == dict(lr=1e-2, momentum=0.9, nesterov=True)


@pytest.mark.parametrize("name", ALL)
def test_test_record_does_not_restate_the_class_capabilities(name):
    if hasattr(optimlab.spec(name).cls, "supports_complex"):
        assert DB.info(name).complex is None, f"{name}: the class states supports_complex; drop complex= here"


def test_record_validation_names_the_field():
    class Toy(torch.optim.SGD):
        pass

    paper = R.Paper("t", "a", 2000)
    with pytest.raises(ValueError, match="paper_defaults"):
        R.AlgorithmSpec("toy", Toy, "f", paper, "s", hparams="lr", paper_defaults={"momentum": 0.9})
    with pytest.raises(ValueError, match="no constructor default"):
        R.AlgorithmSpec("toy", Toy, "f", paper, "s", hparams="lr base")
    spec = R.AlgorithmSpec("toy", Toy, "f", paper, "s", hparams="lr momentum", paper_defaults={"momentum": 0.9})
    assert spec.hparams == ("lr", "momentum") and spec.defaults == {"lr": 1e-3, "momentum": 0.9}


def test_unknown_test_record_says_where_to_add_it():
    with pytest.raises(KeyError, match="tests/optim_db.py"):
        DB.info("no_such_algorithm")
