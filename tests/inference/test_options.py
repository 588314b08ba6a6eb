"""textrnn.inference.options: every sampling option declared once, checked once, named per front end."""

import math
import subprocess
import sys

import pytest

from textrnn.inference.options import (SamplingOptions, OptionError, declaration, given_options, option_name,
                                       unescape)


def test_every_option_is_declared_with_its_help_flag_and_bounds():
    for f in SamplingOptions.fields():
        assert f.metadata["help"] and f.metadata["flag"].startswith("--")
    assert [f.name for f in SamplingOptions.fields()] == [o["name"] for o in declaration(65)]


@pytest.mark.parametrize("changes, field, text", [
    (dict(temperature=0), "temperature", "{temperature} must be from 0.001 to 1000, got 0; use {greedy} for argmax"),
    (dict(temperature=math.inf), "temperature", "{temperature} must be from 0.001 to 1000, got inf"),
    (dict(temperature=math.nan), "temperature", "got nan"),
    (dict(top_p=0.0), "top_p", "{top_p} must be in (0, 1], got 0.0"),
    (dict(top_k=0), "top_k", "{top_k} must be >= 1, got 0"),
    (dict(length=-1), "length", "{length} must be >= 0, got -1"),
    (dict(num_samples=0), "num_samples", "{num_samples} must be >= 1, got 0"),
    (dict(seed=-1), "seed", "{seed} must be from 0 to 9007199254740991, got -1"),
    (dict(stop=("a", "")), "stop", "{stop} must not be empty"),
    (dict(ban=("",)), "ban", "{ban} must not be empty"),
])
def test_one_check_one_text_named_per_front_end(changes, field, text):
    with pytest.raises(OptionError) as e:
        SamplingOptions().replace(**changes).check()
    assert e.value.field == field
    for front in ("command line", "interactive", "server"):
        names = {f.name: option_name(f.name, front) for f in SamplingOptions.fields()}
        assert text.format(**names) in e.value.message(front)
    assert str(e.value) == e.value.message("command line")


def test_the_vocabulary_bounds_top_k_and_greedy_lifts_the_temperature_bound():
    SamplingOptions(top_k=50).check()  # (no vocabulary known yet)
    with pytest.raises(OptionError, match="--top-k must be from 1 to the vocabulary size 40, got 50"):
        SamplingOptions(top_k=50).check(40)
    SamplingOptions(temperature=0, greedy=True).check(40)


def test_names_per_front_end():
    assert [option_name("temperature", f) for f in ("command line", "interactive", "server")] == \
        ["--temp", "/temp", "temperature"]
    assert option_name("seed", "interactive") == "--seed"  # not a command: named as the command line does
    assert option_name("greedy", "server") == '"greedy": true'


def test_text_front_ends_read_escapes_and_pass_on_what_was_given():
    assert unescape(r"\n\n") == "\n\n" and unescape(r"a\\b") == "a\\b" and unescape("plain") == "plain"
    given = given_options({"length": None, "temperature": 0.5, "greedy": False, "stop": (r"\n",), "ban": ()})
    assert given == {"temperature": 0.5, "stop": ("\n",)}
    with pytest.raises(OptionError, match="--top-p"):
        given_options({"top_p": 2.0})


def test_settings_repeat_the_options_but_seed_and_count():
    settings = SamplingOptions(stop=("x",), seed=3, num_samples=2).settings()
    assert settings == {"length": 500, "temperature": 1.0, "top_k": None, "top_p": None, "greedy": False,
                        "stop": ["x"], "ban": []}


def test_the_declaration_imports_no_torch():
    code = "import sys, textrnn.inference.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
