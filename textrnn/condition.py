"""Language models conditioned on a label (``train --condition-column``, ``generate --condition``).

Each row of a labelled table goes into the corpus as one line that starts with its label's
*marker* and a space: a character of Unicode's supplementary private-use area (U+F0000 plus the
label's index among the run's labels, in sorted order) that ordinary text never holds, so a char
or word tokenizer keeps it apart from the words around it. The model learns what text follows each
marker. The model also adds a learned vector for the current label (the last marker seen in the
window) to every input token, so the label holds along the whole row, not only through the state.
Generating with a label starts from that marker (the caller's prompt after it) with the label's
vector at every step, and no marker is ever sampled.

A run has at most :data:`MAX_LABELS` labels (a column with more holds IDs or free text, not kinds
of text), so the markers stay within U+F0000 to U+F03E7; those characters are reserved: a corpus
row (or a prompt) that holds one is refused (:func:`check_no_markers`), since the marker would
switch the label in mid-row. Refused rather than escaped: no ordinary text holds them, and an
escape would change the text the model learns and that a prompt must match. A char or word
tokenizer that a conditioned run trains keeps every label's marker as one token, however rare
(:func:`textrnn.tokenizer.train_tokenizer`'s ``reserved``); a BPE one cannot (an error says so).
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence

from .errors import TextRNNError
from .runconfig import Condition

MARKER_BASE = 0xF0000
MAX_LABELS = 1000  # a run's most labels: its markers are U+F0000 to U+F03E7
_MARKER = re.compile(f"[{chr(MARKER_BASE)}-{chr(MARKER_BASE + MAX_LABELS - 1)}]")


def too_many_labels(column: str, where: str) -> TextRNNError:
    """The error for a label column with more than :data:`MAX_LABELS` labels, found in the file ``where``."""
    return TextRNNError(f"{where}: --condition-column {column}: more than {MAX_LABELS} labels (a column of IDs or "
                        f"free text?); choose a column that names at most {MAX_LABELS} kinds of text (author, genre, "
                        "sentiment)")


def markers(labels: Sequence[str]) -> dict[str, str]:
    """label -> its marker character; more than :data:`MAX_LABELS` labels is an error."""
    if len(labels) > MAX_LABELS:
        raise TextRNNError(f"{len(labels)} labels: more than {MAX_LABELS} labels have no markers; condition on a "
                           f"column with at most {MAX_LABELS} labels")
    return {label: chr(MARKER_BASE + i) for i, label in enumerate(labels)}


def check_no_markers(text: str, what: str) -> None:
    """A one-line error if ``text`` holds a character reserved for label markers (U+F0000 to
    U+F03E7), which would switch a conditioned model's label; ``what`` names the text's place
    (``"data.csv, line 12"``, ``"--prompt"``) and starts the message."""
    found = _MARKER.search(text)
    if found:
        raise TextRNNError(f"{what}: the text holds U+{ord(found.group()):04X}, a character textrnn reserves for "
                           f"label markers (U+{MARKER_BASE:04X} to U+{MARKER_BASE + MAX_LABELS - 1:04X}); remove it")


def line_start(marker: str) -> str:
    """What a conditioned row's line starts with."""
    return marker + " "


def labels_of(condition: Optional[Condition]) -> Optional[list[str]]:
    """The labels a model was conditioned on (``condition``: its run's, ``run.condition``; None: not conditioned)."""
    return list(condition.labels) if condition is not None else None


def prompt_start(condition: Optional[Condition], label: Optional[str]) -> str:
    """The text generation with ``label`` starts from ("" for no label); an unknown label, or a
    label for a model trained without one, is a one-line error."""
    if label is None:
        return ""
    labels = labels_of(condition)
    if labels is None:
        raise TextRNNError(f"--condition {label}: this model was trained without labels; "
                           "train one with --condition-column COLUMN")
    if str(label) not in labels:
        raise TextRNNError(f"--condition {label}: not a label of this model; its labels: {', '.join(labels)}")
    return line_start(markers(labels)[str(label)])


def token_ids(labels: Sequence[str], tokenizer: Any) -> list[int]:
    """The markers' token ids, in label order; a tokenizer that splits a marker (or lacks it) is an error."""
    ids = []
    for label, marker in markers(labels).items():
        encoded = tokenizer.encode(marker).tolist()
        if len(encoded) != 1 and tokenizer.kind == "bpe":
            raise TextRNNError(f"--condition-column: the bpe tokenizer does not keep label {label!r}'s marker as "
                               "one token; use --tokenizer char or word")
        if len(encoded) != 1 or encoded[0] == tokenizer.unk_id:  # (a tokenizer textrnn trained has them all)
            raise TextRNNError(f"--condition-column: label {label!r}'s marker is not in the {tokenizer.kind} "
                               "vocabulary of the model given to --init-from (fine-tuning keeps it); train "
                               "without --init-from")
        ids.append(encoded[0])
    return ids


def marker_ids(condition: Optional[Condition], tokenizer: Any) -> list[int]:
    """The token ids of a model's markers (never sampled); none for a model without labels."""
    labels = labels_of(condition)
    return token_ids(labels, tokenizer) if labels else []


def label_index(condition: Optional[Condition], label: Optional[str]) -> int:
    """What a conditioned model's every generated step carries for ``label``: 1 + its index (0: none)."""
    return 0 if label is None else (labels_of(condition) or []).index(str(label)) + 1
