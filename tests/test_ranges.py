"""jaxdiff.ranges.parse_int_ranges: the one parser of "7,22-24" style integer lists."""
import pytest

from jaxdiff.ranges import parse_int_ranges


@pytest.mark.parametrize("spec, expected", [
    ("7", (7,)),
    ("7,22-24", (7, 22, 23, 24)),
    ("0-4", (0, 1, 2, 3, 4)),
    (" 3 , 1,3 ", (1, 3)),          # spaces, repeats, order: sorted unique
    ("5-5", (5,)),
    ("0-2,7", (0, 1, 2, 7)),
])
def test_parses(spec, expected):
    assert parse_int_ranges(spec, field="f") == expected


@pytest.mark.parametrize("spec, part", [("4-2", "4-2"), ("a", "a"), ("1,-3", "-3"), ("1.5", "1.5"), ("2-", "2-")])
def test_bad_part_names_field_value_part_and_example(spec, part):
    with pytest.raises(ValueError) as e:
        parse_int_ranges(spec, field="data.source classes", example="0-4")
    msg = str(e.value)
    assert msg.startswith(f"data.source classes={spec!r}") and repr(part) in msg and "'0-4'" in msg


def test_empty():
    assert parse_int_ranges("", field="f", allow_empty=True) == ()
    with pytest.raises(ValueError, match=r"f=' , ': no integer given"):
        parse_int_ranges(" , ", field="f")
