"""The runs a server loads, each under a name: language models (with a
:class:`~textrnn.serve.batcher.Batcher` each) and classifiers."""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Optional, Sequence, Union

from .. import checkpoint
from ..errors import TextRNNError
from .batcher import Batcher
from .limits import Limits
from .requests import RequestError

TASKS = {"lm": "language model", "classify": "classifier"}
ENDPOINTS = {"lm": "/generate and /evaluate", "classify": "/classify"}


@dataclasses.dataclass
class Served:
    """One loaded run: its name, the :class:`~textrnn.api.Trained`, and a language model's batcher."""

    name: str
    trained: Any
    batcher: Optional[Batcher] = None

    @property
    def task(self) -> str:
        return self.trained.checkpoint.task

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` says about it."""
        cfg, tok = self.trained.run.model, self.trained.tokenizer
        about = {"name": self.name, "task": self.task, "tokenizer": tok.kind, "vocab_size": tok.vocab_size,
                 "cell": cfg.cell, "layers": cfg.layers, "hidden": cfg.hidden}
        if self.task == "classify":
            about["labels"] = self.trained.labels
        else:
            about["conditions"] = self.trained.conditions
        return about


class Models:
    """The served runs by name; the first of each task is that task's default."""

    def __init__(self, served: Sequence[Served]):
        self.served = {s.name: s for s in served}

    def pick(self, task: str, name: Optional[str]) -> Served:
        """The run ``name`` (None: the first ``task`` one); 404 when there is none, 422 when it is of another task."""
        if name is None:
            for s in self.served.values():
                if s.task == task:
                    return s
            raise RequestError(404, f"this server has no {TASKS[task]} loaded; start it with one "
                                    "(textrnn serve --checkpoint RUN)", "model")
        if name not in self.served:
            raise RequestError(404, f"no model named {name!r}; the models: {', '.join(self.served)}", "model")
        found = self.served[name]
        if found.task != task:
            raise RequestError(422, f"model {name!r} is a {TASKS[found.task]}; {ENDPOINTS[task]} take a "
                                    f"{TASKS[task]}", "model")
        return found

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.served.values()]

    def drain(self, grace: float) -> None:
        """Every batcher takes no new requests and cuts its streams after ``grace`` s (signal-handler safe)."""
        for s in self.served.values():
            if s.batcher is not None:
                s.batcher.drain(grace)

    def close(self) -> None:
        for s in self.served.values():
            if s.batcher is not None:
                s.batcher.close()


def default_runs(root: Union[str, os.PathLike] = "checkpoints") -> list[os.PathLike]:
    """The latest language model and the latest classifier under ``root``, each else the shipped one."""
    runs = []
    for task in TASKS:
        try:
            runs.append(checkpoint.find_latest(root, task))
        except TextRNNError:
            continue
    if not runs:
        raise TextRNNError(f"no trained model under {root}/ and none shipped; pass --checkpoint RUN")
    return runs


def load_models(runs: Sequence[Union[str, os.PathLike]], limits: Limits, device: str = "cpu") -> Models:
    """Load ``runs`` (run directories or shipped names; none: :func:`default_runs`), named by
    their directories, each name once (``-2``, ``-3``... for repeats, also among the default runs:
    a language model under ./checkpoints named like the shipped classifier); each language model
    gets its batcher."""
    from ..api import load

    served: list[Served] = []
    names: set[str] = set()
    try:
        for run in runs or default_runs():
            trained = load(checkpoint.locate(run), device=device)
            base = trained.path.name
            name = next(n for n in itertools.chain([base], (f"{base}-{k}" for k in itertools.count(2)))
                        if n not in names)
            names.add(name)
            lm = trained.checkpoint.task == "lm"
            served.append(Served(name, trained, Batcher(trained, limits.max_streams) if lm else None))
    except BaseException:
        Models(served).close()
        raise
    return Models(served)
