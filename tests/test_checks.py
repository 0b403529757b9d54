"""The one parser of numbers typed as text, used by every option and field that takes several."""

import pytest

from napari_stereo_tem.checks import InputError, parse_numbers


@pytest.mark.parametrize("text, kind, expected", [
    ("-3, 9.5", float, (-3.0, 9.5)),
    ("-3;9.5", float, (-3.0, 9.5)),
    ("512x384", int, (512, 384)),
    ("1 -1 0", int, (1, -1, 0)),
    (" 2.0 ", int, (2,)),
])
def test_separators_and_kinds(text, kind, expected):
    values = parse_numbers(text, name="x", kind=kind)
    assert values == expected
    assert all(type(v) is kind for v in values)


@pytest.mark.parametrize("text", [None, "", "   "])
def test_blank_is_none(text):
    assert parse_numbers(text, name="x", count=2) is None


@pytest.mark.parametrize("text, count, kind, words", [
    ("1,2,3", 2, float, ["--range", "2 numbers", "got 3"]),
    ("1,abc", 2, float, ["--range", "'abc'", "not a number"]),
    ("1.5,2", 2, int, ["--range", "whole numbers"]),
    ("1,nan", 2, float, ["--range", "finite"]),
    ("7", (2, 3), int, ["2 or 3"]),
])
def test_bad_text_names_the_option_and_the_problem(text, count, kind, words):
    with pytest.raises(InputError) as info:
        parse_numbers(text, name="--range", count=count, kind=kind, example="-24,24")
    message = str(info.value)
    assert all(w in message for w in words), message
