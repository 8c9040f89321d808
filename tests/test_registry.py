"""jaxdiff.registry.Registry: the one name → object table; a second registration of a name is refused."""
import pytest

from jaxdiff.registry import Registry, did_you_mean


def test_register_as_decorator_and_directly():
    reg = Registry("widget")

    @reg.register("a")
    def a():
        return 1

    reg.register("b", 2)
    assert a() == 1 and reg["a"] is a and reg["b"] == 2
    assert list(reg) == ["a", "b"] and len(reg) == 2 and "a" in reg and "c" not in reg
    assert reg.names() == ("a", "b")


def test_duplicate_name_is_refused_and_keeps_the_first():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match=r"widget 'a' is already registered"):
        reg.register("a", 2)
    assert reg["a"] == 1


def test_unregister_then_register_again():
    reg = Registry("widget")
    reg.register("a", 1)
    assert reg.unregister("a") == 1 and "a" not in reg
    assert reg.unregister("a") is None
    reg.register("a", 3)
    assert reg["a"] == 3


@pytest.mark.parametrize("bad", ["", None, 3])
def test_name_must_be_a_nonempty_string(bad):
    with pytest.raises(ValueError, match="non-empty string"):
        Registry("widget").register(bad, 1)


def test_get_or_raise_names_field_value_allowed_and_a_suggestion():
    reg = Registry("corrector")
    reg.register("ddim", 1)
    reg.register("ddpm", 2)
    assert reg.get_or_raise("ddim") == 1
    with pytest.raises(ValueError) as e:
        reg.get_or_raise("ddin", field="sample.corrector")
    msg = str(e.value)
    assert "sample.corrector='ddin'" in msg and "['ddim', 'ddpm']" in msg and "did you mean 'ddim'" in msg
    with pytest.raises(ValueError, match=r"unknown corrector 'zzz'.*\['ddim', 'ddpm'\]$"):
        reg.get_or_raise("zzz")


def test_registry_is_read_only_as_a_mapping():
    reg = Registry("widget")
    with pytest.raises(TypeError):
        reg["a"] = 1  # only register() adds entries


def test_did_you_mean():
    assert did_you_mean("blurr", ["blur", "snow"]) == " (did you mean 'blur'?)"
    assert did_you_mean("qqqq", ["blur", "snow"]) == ""


def test_every_library_registry_refuses_duplicates():
    from jaxdiff import degradations, priors, sampling
    from jaxdiff.processes import schedules

    for reg, name in ((degradations.DEGRADATIONS, "blur"), (priors.PRIORS, "gaussian"),
                      (sampling.CORRECTORS, "ddim"), (schedules.SCHEDULES, "linear")):
        assert isinstance(reg, Registry)
        with pytest.raises(ValueError, match="already registered"):
            reg.register(name, object())
