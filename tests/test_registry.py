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


def test_an_entry_remembers_the_module_and_file_that_defined_it(tmp_path):
    import dataclasses
    import importlib.util
    import os

    from jaxdiff import degradations, sampling
    from jaxdiff.registry import origin_of

    path = tmp_path / "widgets_here.py"
    path.write_text("def make():\n    return 1\n\nclass Thing:\n    def f(self):\n        return 2\n")
    spec = importlib.util.spec_from_file_location("widgets_here", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    @dataclasses.dataclass
    class Wrapped:  # as register_degradation wraps a builder: the builder is what the user defined
        name: str
        builder: object

    reg = Registry("widget")
    reg.register("f", mod.make)
    reg.register("c", mod.Thing)
    reg.register("w", Wrapped("w", mod.make))
    reg.register("n", 3)
    reg.register("d", 4, defined_by=mod.make)
    want = (str(path), "widgets_here")
    for name in "fcwd":
        assert (reg.origin(name).file, reg.origin(name).module) == want, name
        assert not reg.origin(name).builtin
    assert reg.origin("n").module == "builtins" and reg.origin("missing") is None
    here = origin_of(test_an_entry_remembers_the_module_and_file_that_defined_it)
    assert here.file == os.path.abspath(__file__)
    assert reg.unregister("f") is mod.make and reg.origin("f") is None
    # the library's own entries are built-ins, each from the module that defines it
    blur, ddim = degradations.DEGRADATIONS.origin("blur"), sampling.CORRECTORS.origin("ddim")
    assert blur.builtin and blur.module == "jaxdiff.degradations.blur" and blur.file.endswith("blur.py")
    assert ddim.builtin and ddim.module == "jaxdiff.sampling.correctors"


def test_record_lookups_lists_each_entry_looked_up_once_in_order():
    from jaxdiff.registry import record_lookups, registries

    a, b = Registry("widget"), Registry("gadget")
    a.register("x", 1)
    a.register("y", 2)
    b.register("x", 3)
    assert a.get("x") == 1  # outside a block: nothing recorded anywhere
    with record_lookups() as outer:
        assert "y" in a and dict(a.items()) == {"x": 1, "y": 2} and list(a.values()) == [1, 2]  # not uses
        assert outer == []
        a["y"]
        with record_lookups() as inner:
            assert b.get_or_raise("x") == 3 and a.get("x") == 1 and a.get("zz") is None
        a["y"]
        with pytest.raises(ValueError):
            a.get_or_raise("nope")
    assert [(r.what, n) for r, n in outer] == [("widget", "y"), ("gadget", "x"), ("widget", "x")]
    assert [(r.what, n) for r, n in inner] == [("gadget", "x"), ("widget", "x")]
    assert a in registries("widget") and b in registries("gadget") and a not in registries("gadget")
