"""textrnn: train and use recurrent-network text models (language models, classifiers).

The public API is imported lazily, so ``import textrnn`` (and ``textrnn --help``) does
not pay for importing torch.

    >>> import textrnn
    >>> run = textrnn.train("corpus.txt", max_time="5m")          # doctest: +SKIP
    >>> lm = textrnn.load(run.path)                                  # doctest: +SKIP
    >>> print(lm.generate("ROMEO:", length=200, temperature=0.8))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "textrnn.api",
    "train_classifier": "textrnn.api",
    "load": "textrnn.api",
    "Trained": "textrnn.api",
    "evaluate": "textrnn.api",
    "TextRNNError": "textrnn.errors",
    "ModelConfig": "textrnn.config",
    "TrainConfig": "textrnn.config",
    "Tokenizer": "textrnn.tokenizer",
    "train_tokenizer": "textrnn.tokenizer",
    "LanguageModel": "textrnn.model",
    "train_loop": "textrnn.training.trainer",
    "configure_process": "textrnn.process",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .api import Trained, evaluate, load, train, train_classifier  # noqa: F401
    from .config import ModelConfig, TrainConfig  # noqa: F401
    from .errors import TextRNNError  # noqa: F401
    from .model import LanguageModel  # noqa: F401
    from .process import configure_process  # noqa: F401
    from .tokenizer import Tokenizer, train_tokenizer  # noqa: F401
    from .training.trainer import train_loop  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'textrnn' has no attribute {name!r}")
