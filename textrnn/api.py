"""The Python API: the same functions the commands call.

    import textrnn
    run = textrnn.train("corpus.txt", max_time="5m", out="checkpoints/mine")
    lm = textrnn.load(run.path)
    text = lm.generate("ROMEO:", length=300, temperature=0.8, top_p=0.95, seed=1)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union


from . import checkpoint
from .errors import TextRNNError
from .condition import label_index, labels_of, marker_ids, prompt_start
from .inference.generate import generate as _generate
from .inference.generate import generate_many as _generate_many
from .inference.options import SamplingOptions
from .inference.sampling import texts_of
from .training.lm import train_language_model
from .training.rundir import RunResult
from .training.runtime import resolve_device

if TYPE_CHECKING:  # pragma: no cover
    from .inference.session import Session

PathLike = Union[str, os.PathLike]


def train(corpus: Union[PathLike, Sequence[PathLike], None] = None, **options: Any) -> RunResult:
    """Train a language model on one or more text files (default: the shipped
    tiny-shakespeare). See :func:`textrnn.training.lm.train_language_model` for options."""
    if isinstance(corpus, (str, os.PathLike)):
        corpus = [corpus]
    return train_language_model(corpus, **options)


@dataclasses.dataclass(frozen=True)
class Conditioning:
    """How a conditioned language model samples text of one label: the text starts from ``start`` (the
    label's marker), the markers ``banned`` are never sampled, every step has ``label`` (1 + its index; 0 and
    "" and no bans for a model without labels, or no label)."""

    start: str
    banned: list[int]
    label: int


class Trained:
    """A loaded checkpoint, ready to use."""

    def __init__(self, ckpt: checkpoint.Checkpoint):
        self.checkpoint = ckpt
        self.path = ckpt.path
        self.run = ckpt.run  # the run's configuration (textrnn.runconfig.RunConfig)
        self.tokenizer = ckpt.tokenizer
        self.model = ckpt.model

    def __repr__(self) -> str:
        m = self.run.model
        return (f"Trained({str(self.path)!r}, task={self.checkpoint.task!r}, {m.layers}x{m.hidden} "
                f"{m.cell}, tokenizer={self.tokenizer.kind!r})")

    def require(self, task: str, what: str) -> None:
        """A one-line error unless this is a ``task`` model (``lm`` / ``classify``); ``what`` needs it."""
        if self.checkpoint.task != task:
            kind = "a classifier" if self.checkpoint.task == "classify" else "a language model"
            raise TextRNNError(f"{self.path}: is {kind}; {what} needs a "
                               f"{'language model' if task == 'lm' else 'classifier'} checkpoint")

    def sampling(self, length: Optional[int] = None, **options: Any) -> SamplingOptions:
        """The checked :class:`~textrnn.inference.sampling.SamplingOptions` for this model: its defaults,
        with ``length`` (None: the default) and ``options`` (``temperature``, ``top_k``, ``top_p``, ``greedy``,
        ``stop``, ``ban``, ``num_samples``, ``seed``)."""
        given = {"length": length} if length is not None else {}
        return SamplingOptions().replace(**given, **options).check(self.tokenizer.vocab_size)

    def conditioning(self, condition: Optional[str]) -> Conditioning:
        """What sampling with ``condition`` (a label of a model trained with ``condition_column``; None: none)
        starts from, never samples and steps with (see :mod:`textrnn.condition`); checks that this is a
        language model."""
        self.require("lm", "generate")
        labelled = self.run.condition
        return Conditioning(prompt_start(labelled, condition), marker_ids(labelled, self.tokenizer),
                            label_index(labelled, condition))

    def stream(self, prompt: str = "", length: Optional[int] = None, *, condition: Optional[str] = None,
               **options: Any) -> Iterator[list[str]]:
        """Yield the generated text piece by piece: a list with one piece per sample. ``condition``:
        a label of a model trained with ``condition_column`` (the text is of that label's kind)."""
        c = self.conditioning(condition)
        return _generate(self.model, self.tokenizer, prompt, self.sampling(length, **options), banned=c.banned,
                         label=c.label, start=c.start)

    @property
    def conditions(self) -> Optional[list[str]]:
        """The labels a conditioned language model generates for (None: not conditioned)."""
        return labels_of(self.run.condition)

    def session(self, *, condition: Optional[str] = None, **options: Any) -> "Session":
        """A :class:`~textrnn.inference.session.Session`: feed text turn by turn, each continuation streamed,
        the state carried across turns. Options: those of :meth:`sampling` (``length``: tokens per
        continuation) and ``condition``."""
        from .inference.session import Session

        c = self.conditioning(condition)
        return Session(self.model, self.tokenizer, self.sampling(**options), banned=c.banned, label=c.label,
                       start=c.start)

    def generate(self, prompt: str = "", length: Optional[int] = None, **options: Any) -> Union[str, list[str]]:
        """Sample ``length`` tokens after ``prompt``. Options: those of :meth:`sampling` and ``condition``.
        One string, or a list for ``num_samples > 1``."""
        n = options.get("num_samples", 1)
        texts = texts_of(self.stream(prompt, length, **options), n)
        return texts[0] if n == 1 else texts

    def generate_many(self, prompt: str = "", length: Optional[int] = None, *, batch_size: int = 100,
                      condition: Optional[str] = None, **options: Any) -> Iterator[dict[str, Any]]:
        """Sample ``num_samples`` texts, ``batch_size`` at a time: one record per sample (``sample``, its own
        ``seed``, ``prompt``, ``text``, the settings, and ``condition`` for a conditioned model). See
        :func:`textrnn.inference.generate.generate_many`."""
        c = self.conditioning(condition)
        records = _generate_many(self.model, self.tokenizer, prompt, self.sampling(length, **options),
                                 batch_size=batch_size, banned=c.banned, label=c.label, start=c.start)
        labelled = {"condition": condition} if self.conditions else {}
        return ({**record, **labelled} for record in records)

    def evaluate(self, files: Union[PathLike, Sequence[PathLike]], *, encoding: Optional[str] = None,
                 per_line: bool = False) -> list[dict[str, Any]]:
        """Score text files with this language model: one dict per file (tokens, loss in
        nats/token, perplexity, bits per character, word-level perplexity, unknown share,
        seconds; the rows of ``per_line`` when asked). See :mod:`textrnn.inference.scoring`."""
        from .inference.scoring import evaluate_model

        self.require("lm", "evaluate")
        return evaluate_model(self.model, self.tokenizer, self.run, files, encoding=encoding, per_line=per_line)

    @property
    def labels(self) -> list:
        """The classifier's label names, in the order of its probability columns."""
        self.require("classify", "labels")
        return list(self.run.labels)

    @property
    def label_aliases(self) -> dict[str, Any]:
        """Other values that stand for a label (alias -> label name): the raw values of its training file
        when its labels were renamed (the shipped ``sst2``: ``"0"`` is ``negative``, ``"1"`` ``positive``)."""
        self.require("classify", "labels")
        return dict(self.run.label_aliases or {})

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256):
        """Class probabilities, an ``(N, C)`` numpy array in input order (columns: ``labels``), at the run's
        fitted temperature (``run.calibration``; see :mod:`textrnn.inference.calibration`)."""
        from .inference.calibration import temperature_of
        from .inference.classify import predict

        self.require("classify", "classify")
        return predict(self.model, self.tokenizer, texts, max_len=self.run.train.max_len,
                       batch_size=batch_size, temperature=temperature_of(self.run))

    def classify(self, texts: Union[str, Sequence[str]], batch_size: int = 256, *,
                 min_confidence: Optional[float] = None) -> Union[tuple, list[tuple]]:
        """``(label, probability)`` for one text, or a list of them for a list of texts. With ``min_confidence``
        (0 < P < 1) a text whose most likely label's probability is below it is labelled ``"uncertain"`` (the
        probability is still that label's)."""
        from .inference.classify import check_min_confidence, predicted_labels

        self.require("classify", "classify")
        check_min_confidence(min_confidence, self.labels, str(self.path), "min_confidence")
        single = isinstance(texts, str)
        probs = self.predict_proba([texts] if single else list(texts), batch_size)
        out = [(label, float(p.max())) for label, p in zip(predicted_labels(probs, self.labels, min_confidence), probs)]
        return out[0] if single else out


def train_classifier(train_file: PathLike, **options: Any) -> RunResult:
    """Train a classifier on a labelled CSV / TSV / JSONL file. See
    :func:`textrnn.training.classifier.train_classifier` for options."""
    from .training.classifier import train_classifier as _train_classifier

    return _train_classifier(train_file, **options)


def evaluate(files: Union[PathLike, Sequence[PathLike]], checkpoint_dir: Optional[PathLike] = None, *,
             device: str = "cpu", encoding: Optional[str] = None, per_line: bool = False,
             which: str = "best") -> list[dict[str, Any]]:
    """Score ``files`` with a language-model run (default: the latest under ./checkpoints):
    one dict per file (see :func:`textrnn.inference.scoring.score_file`), with ``per_line`` when
    ``per_line``. ``encoding`` defaults to the run's own."""
    return load(checkpoint_dir, device=device, which=which).evaluate(files, encoding=encoding, per_line=per_line)


def load(path: Optional[PathLike] = None, *, device: str = "cpu", which: str = "best",
         task: str = "lm") -> Trained:
    """Load a checkpoint directory or a shipped model by name (``english-char``, ``sst2``);
    default: the most recent ``task`` model (``lm`` or ``classify``) under ./checkpoints, else
    the one textrnn ships."""
    path = Path(path) if path is not None else checkpoint.find_latest("checkpoints", task)
    return Trained(checkpoint.load(path, which=which, device=resolve_device(device)))
