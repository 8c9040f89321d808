"""jaxdiff.checks: the one integer test and integer-argument check."""
import numpy as np
import pytest

from jaxdiff.checks import check_int, is_int


@pytest.mark.parametrize("v, ok", [(0, True), (-3, True), (np.int32(4), True), (np.uint8(2), True),
                                   (True, False), (np.bool_(False), False), (2.0, False), ("2", False), (None, False)])
def test_is_int(v, ok):
    assert is_int(v) is ok


def test_check_int_returns_a_python_int():
    v = check_int(np.int64(5), field="n", lo=1)
    assert v == 5 and type(v) is int
    assert check_int(-7, field="n") == -7  # no bound


@pytest.mark.parametrize("v", [0, True, 1.5, "3"])
def test_check_int_names_owner_field_bound_and_value(v):
    with pytest.raises(ValueError) as e:
        check_int(v, field="n_iter", lo=1, owner="prior 'superres'")
    assert str(e.value) == f"prior 'superres': n_iter must be an integer >= 1, got {v!r}"
    with pytest.raises(ValueError) as e:
        check_int(v, field="data.image_size", lo=1)
    assert str(e.value) == f"data.image_size={v!r}: must be an integer >= 1"
