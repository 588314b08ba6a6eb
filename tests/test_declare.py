"""textrnn.declare: how an option is declared, and the parsers and checks the declarations share."""

import dataclasses

import pytest

from textrnn.declare import check_choice, check_positive, check_probability, option, options_of, parse_duration
from textrnn.errors import TextRNNError


def test_parse_duration():
    assert parse_duration("45s") == 45
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90") == 90
    for bad in ["", "5x", "m5", "1h-3m", "0s"]:
        with pytest.raises(TextRNNError, match="--max-time"):
            parse_duration(bad)


def test_the_shared_checks_name_the_flag():
    for check, args, message in [(check_positive, ("seq_len", 0), "--seq-len must be positive, got 0"),
                                 (check_probability, ("dropout", 1.0), "--dropout must be in [0, 1), got 1.0"),
                                 (check_choice, ("cell", "lsmt", ("lstm", "gru")), "--cell must be lstm or gru")]:
        with pytest.raises(TextRNNError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            check(*args)


def test_an_option_is_a_dataclass_field_with_its_declaration():
    @dataclasses.dataclass
    class Options:
        plain: int = 3
        size: int = option(5, "How big.", classify=7, fitted=True)

    (size,) = options_of(Options)
    assert size.name == "size" and size.default == 5
    assert size.metadata["help"] == "How big." and size.metadata["defaults"] == {"classify": 7}
    assert size.metadata["fitted"]
