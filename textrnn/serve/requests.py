"""What a request to ``textrnn serve`` may ask for: the server's limits (its options) and the
checks of each endpoint's JSON body.

Every mistake is a :class:`RequestError`: an HTTP status (400 not JSON, 413 too large, 404 no
such model, 422 a field's value, 503 busy), a message for people and the field it is about.
The fields of a /generate body are the sampling options of
:class:`~textrnn.inference.options.SamplingOptions` (and ``prompt``, ``condition``, ``model``,
``stream``), checked by its one check, the options named as the JSON names them. Nothing here
reads a file or runs a model.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional, Sequence

from ..errors import TextRNNError
from ..inference.options import OptionError, SamplingOptions, repeatable, value_type
from .limits import Limits


class RequestError(TextRNNError):
    """A request the server refuses: ``status`` (HTTP), the message, and ``field`` (None: the whole body)."""

    def __init__(self, status: int, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.status, self.field = status, field

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field}


@dataclasses.dataclass(frozen=True)
class Sampling(SamplingOptions):
    """A checked generation request: its sampling options (``seed`` None: a fresh one), its prompt and a
    conditioned model's label."""

    prompt: str = ""
    condition: Optional[str] = None


GENERATE_FIELDS = ("prompt", *(f.name for f in SamplingOptions.fields()), "condition", "model", "stream")
TEXT_FIELDS = ("texts", "text", "model")
CLASSIFY_FIELDS = (*TEXT_FIELDS, "min_confidence")


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (NaN and Infinity are not JSON), else a 400."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # (UnicodeDecodeError is a ValueError)
        raise RequestError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {_kind(body)}")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def model_name(body: dict[str, Any]) -> Optional[str]:
    """The ``model`` field: a served model's name, or None for the default one."""
    return _string(body, "model", None, 200, nullable=True)


def parse_generate(body: dict[str, Any], limits: Limits, vocab_size: int,
                   conditions: Optional[Sequence[str]]) -> tuple[Sampling, bool]:
    """A /generate body as a :class:`Sampling` and whether to stream it, for a model of
    ``vocab_size`` tokens trained on the labels ``conditions`` (None: none)."""
    _known(body, GENERATE_FIELDS)
    options = {f.name: _option(body, f) for f in SamplingOptions.fields()}
    options["length"] = _integer(body, "length", min(SamplingOptions.length, limits.max_length))
    sampling = Sampling(**options, prompt=_string(body, "prompt", "", limits.max_prompt_chars,
                                                  limit="--max-prompt-chars"),
                        condition=_string(body, "condition", None, 200, nullable=True))
    try:
        sampling.check(vocab_size)
    except OptionError as e:
        raise RequestError(422, e.message("server"), e.field) from None
    _at_most(sampling.length, "length", limits.max_length, "--max-length")
    _at_most(sampling.num_samples, "num_samples", limits.max_samples, "--max-samples")
    _check_condition(sampling.condition, conditions)
    return sampling, _boolean(body, "stream", False)


def _option(body: dict[str, Any], f: dataclasses.Field) -> Any:
    """One sampling option of a body, of its declared type (a list option: an array of strings, or one)."""
    kind, nullable = value_type(f), f.default is None
    if repeatable(f):
        value = body.get(f.name, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or len(value) > 64:
            raise RequestError(422, f"{f.name} must be an array of at most 64 strings, got {_kind(value)}", f.name)
        return tuple(_string({f"{f.name}[{i}]": v}, f"{f.name}[{i}]", "", 1000) for i, v in enumerate(value))
    if kind is bool:
        return _boolean(body, f.name, f.default)
    if kind is int:
        return _integer(body, f.name, f.default, nullable=nullable)
    return _number(body, f.name, f.default, nullable=nullable)


def _check_condition(condition: Optional[str], conditions: Optional[Sequence[str]]) -> None:
    if condition is None:
        return
    if conditions is None:
        raise RequestError(422, "this model was trained without labels; leave out condition", "condition")
    if condition not in conditions:
        raise RequestError(422, f"condition {condition!r} is not a label of this model; its labels: "
                                f"{', '.join(conditions)}", "condition")


def parse_texts(body: dict[str, Any], limits: Limits, fields: Sequence[str] = TEXT_FIELDS) -> tuple[list[str], bool]:
    """The texts of a /classify or /evaluate body (``texts``: a list, or ``text``: one), and
    whether it sent one ``text``; ``fields``: the fields the endpoint takes."""
    _known(body, fields)
    if ("text" in body) == ("texts" in body):
        raise RequestError(422, 'give either "texts": [a list of strings] or "text": "a string"', "texts")
    if "text" in body:
        return [_string(body, "text", "", limits.max_text_chars, limit="--max-text-chars")], True
    texts = body["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f"texts must be an array of strings, got {_kind(texts)}", "texts")
    if not 1 <= len(texts) <= limits.max_texts:
        raise RequestError(422, f"texts must hold from 1 to {limits.max_texts} texts (the server's --max-texts), "
                                f"got {len(texts)}", "texts")
    return [_string({f"texts[{i}]": t}, f"texts[{i}]", "", limits.max_text_chars, limit="--max-text-chars")
            for i, t in enumerate(texts)], False


def parse_min_confidence(body: dict[str, Any], labels: Sequence[Any]) -> Optional[float]:
    """A /classify body's ``min_confidence`` (None: not given) for a classifier of ``labels``: below it a text
    is labelled ``uncertain``."""
    from ..inference.classify import check_min_confidence

    value = _number(body, "min_confidence", None, nullable=True)
    try:
        check_min_confidence(value, labels, "this model", "min_confidence")
    except TextRNNError as e:
        raise RequestError(422, str(e), "min_confidence") from None
    return value


# -- one field ----------------------------------------------------------------------------------
def _known(body: dict[str, Any], fields: Sequence[str]) -> None:
    for key in body:
        if key not in fields:
            raise RequestError(422, f"unknown field {key!r}; the fields are: {', '.join(fields)}", key)


def _kind(value: Any) -> str:
    """How an error names a JSON value's type."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    names = {str: "a string", list: "an array", dict: "an object", int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _field(body: dict[str, Any], name: str, default: Any, nullable: bool) -> tuple[bool, Any]:
    """(given, value): not given (or null where null is allowed) gives the default."""
    if name not in body or (body[name] is None and nullable):
        return False, default
    return True, body[name]


def _integer(body: dict[str, Any], name: str, default: Optional[int], nullable: bool = False) -> Optional[int]:
    given, value = _field(body, name, default, nullable)
    if given and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        raise RequestError(422, f"{name} must be an integer{' or null' if nullable else ''}, got {_kind(value)}", name)
    return value


def _number(body: dict[str, Any], name: str, default: Optional[float], nullable: bool = False) -> Optional[float]:
    given, value = _field(body, name, default, nullable)
    if given and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise RequestError(422, f"{name} must be a number{' or null' if nullable else ''}, got {_kind(value)}", name)
    if given and not math.isfinite(value):
        raise RequestError(422, f"{name} must be a finite number, got {value}", name)
    return None if value is None else float(value)


def _boolean(body: dict[str, Any], name: str, default: bool) -> bool:
    given, value = _field(body, name, default, False)
    if given and not isinstance(value, bool):
        raise RequestError(422, f"{name} must be true or false, got {_kind(value)}", name)
    return value


def _string(body: dict[str, Any], name: str, default: Optional[str], max_chars: int, *, nullable: bool = False,
            limit: Optional[str] = None) -> Optional[str]:
    given, value = _field(body, name, default, nullable)
    if not given:
        return value
    if not isinstance(value, str):
        raise RequestError(422, f"{name} must be a string{' or null' if nullable else ''}, got {_kind(value)}", name)
    _at_most(len(value), name, max_chars, limit, what=" characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(422, f"{name} is not valid Unicode text (it holds a lone surrogate)", name) from None
    return value


def _at_most(value: int, name: str, most: int, limit: Optional[str], what: str = "") -> None:
    if value > most:
        server = f" (the server's {limit})" if limit else ""
        raise RequestError(422, f"{name} must be at most {most}{what}{server}, got {value}", name)
