"""``textrnn export --format onnx``: a trained model as ONNX functions that run without PyTorch.

::

    DEST/
      step.onnx        language model: one token and the state -> logits and the next state
      prompt.onnx      language model: a prompt (B, T) and the state -> the last token's logits and the state
      classifier.onnx  classifier: padded ids (B, T) and lengths (B,) -> logits and probabilities (B, C) (at
                       the run's fitted temperature: softmax(logits / T), T in model.json)
      tokenizer.json   the run's tokenizer as a plain Hugging Face ``tokenizers`` file (its kind is in model.json)
      model.json       what the functions take and give, and what sampling needs (META)
      sample.py        language model: a sampler that needs only numpy, onnxruntime and tokenizers

The functions are exported by torch's TorchScript-based exporter (``dynamo=False``; it needs the
``onnx`` package, not ``onnxscript``): it turns ``nn.LSTM`` / ``GRU`` / ``RNN`` into ONNX's own
recurrent ops over a sequence of any length, and a classifier's packed sequences into their
``sequence_lens``; a minGRU / minLSTM's scan into an ONNX Loop (:func:`textrnn.mincells.recurrence`).
The one-step function is the cell arithmetic of :func:`textrnn.inference.stepper.cell_step` on the
model's own (unfolded) weights. Every function is checked against PyTorch on random inputs
(:func:`max_difference`, with onnxruntime) before the export is kept. The weights are float32
(an export made with ``--half`` or ``--int8-embedding`` loads as float32 and exports so).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import __version__, checkpoint, files
from ..config import MIN_CELLS
from ..condition import label_index, labels_of, marker_ids, prompt_start
from ..errors import TextRNNError
from ..inference.calibration import temperature_of
from ..inference.generate import banned_ids, encode_prompt
from ..inference.options import declaration
from ..layers import RECURRENT_PARAMS
from ..model import Classifier, LanguageModel
from ..inference import state as states
from ..inference.stepper import Product, cell_step
from ..tokenizer import NO_SPACE_AFTER, NO_SPACE_BEFORE
from .run import export_dir

META, SAMPLER = "model.json", "sample.py"
SAMPLER_SOURCE = Path(__file__).with_name("sample.py")  # copied verbatim as DEST/sample.py
FORMAT = "textrnn-onnx"
OPSET = 17
TOLERANCE = 1e-4  # the most an exported function may differ from PyTorch (float32; relative above 1: see check)
INSTALL = 'pip install "textrnn[onnx]"'


def require_onnx() -> None:
    """A one-line error when the ``onnx`` extra (onnx and onnxruntime) is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise TextRNNError(f"--format onnx needs the onnx extra ({e.name} is missing): {INSTALL}") from None


def state_names(cell: str) -> list[str]:
    """The recurrent state's inputs, each (layers, B, H): ``h`` and, for an LSTM, ``c``."""
    return ["h", "c"] if cell == "lstm" else ["h"]


def _labels(label: tuple[Tensor, ...], length: int) -> Optional[Tensor]:
    """A conditioned model's ``label`` input (B,) as every token's (B, length); None without one."""
    return label[0][:, None].expand(-1, length) if label else None


class StepFunction(nn.Module):
    """A :class:`LanguageModel`, one token: ``ids`` (B,), the state (``h`` [, ``c``], each
    (layers, B, H)) [, a conditioned model's ``label`` (B,): 1 + the label's index, 0 for none]
    -> ``logits`` (B, V) (what ``forward`` gives: log-probabilities with an adaptive softmax)
    and the next state. The cell arithmetic is :func:`~textrnn.inference.stepper.cell_step`'s."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        model, cfg = self.model, self.model.cfg
        encoder, rnn = model.encoder, model.encoder.rnn
        n = len(state_names(cfg.cell))
        state = states.from_module(states.unflat(inputs[:n]))
        x = encoder.inputs(ids[:, None], _labels(inputs[n:], 1))[:, 0]  # (B, E)
        new_state = []
        for k in range(cfg.layers):
            if cfg.cell in MIN_CELLS:  # no hidden side: the gates read only the input
                x_proj, hidden_side = F.linear(x, rnn.get_parameter(f"weight_ih_l{k}"),
                                               rnn.get_parameter(f"bias_ih_l{k}")), None  # (B, G*H)
            else:
                w_ih, w_hh, b_ih, b_hh = (getattr(rnn, f"{name}_l{k}") for name in RECURRENT_PARAMS)
                x_proj = F.linear(x, w_ih, b_ih if cfg.cell == "gru" else b_ih + b_hh)  # (B, G*H)
                hidden_side = Product(w_hh, b_hh if cfg.cell == "gru" else None, pack=False)  # plain operators
            layer_state, x = cell_step(cfg.cell, x_proj, state[k], hidden_side)
            new_state.append(layer_state)
        return (model.scores(x), *states.flat(states.to_module(new_state)))


class PromptFunction(nn.Module):
    """A :class:`LanguageModel` over a prompt: ``ids`` (B, T), the state [, ``label``] as
    :class:`StepFunction`'s -> ``logits`` (B, V) of the last token and the state after it. A
    conditioned model's every token has ``label``, as in generation (where the prompt starts with
    the label's marker, or has none: label 0)."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        encoder = self.model.encoder  # (its stack runs the module itself in eval: no weight drop, no dropout)
        n = len(state_names(self.model.cfg.cell))
        x = encoder.inputs(ids, _labels(inputs[n:], ids.shape[1]))  # (B, T, E)
        out, new_state = encoder.rnn(x, states.unflat(inputs[:n]))  # (B, T, H)
        return (self.model.scores(out[:, -1]), *states.flat(new_state))


class ClassifierFunction(nn.Module):
    """A :class:`Classifier`: ``ids`` (B, T) padded, ``lengths`` (B,) (each >= 1) -> ``logits``
    and ``probs`` (B, C), the columns in the order of the run's labels; ``probs`` are
    ``softmax(logits / temperature)`` (the run's fitted temperature, as textrnn gives them)."""

    def __init__(self, model: Classifier, temperature: float = 1.0):
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(ids, lengths)  # (B, C)
        return logits, torch.softmax(logits / self.temperature, dim=-1)


@dataclass
class Function:
    """One exported function: its module, input and output names, and which axes vary."""

    name: str
    module: nn.Module
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    def describe(self) -> dict[str, Any]:
        return {"file": self.file, "inputs": self.inputs, "outputs": self.outputs}


def functions(model: nn.Module, temperature: float = 1.0) -> list[Function]:
    """What a model exports as: a language model's ``step`` and ``prompt``, a classifier's ``classifier``
    (its probabilities at ``temperature``)."""
    if isinstance(model, Classifier):
        return [Function("classifier", ClassifierFunction(model, temperature), ["ids", "lengths"], ["logits", "probs"],
                         {"ids": {0: "batch", 1: "length"}, "lengths": {0: "batch"}, "logits": {0: "batch"},
                          "probs": {0: "batch"}})]
    states = state_names(model.cfg.cell)
    label = ["label"] if model.encoder.label_embedding is not None else []
    outputs = ["logits"] + [f"{s}_next" for s in states]
    batch = {name: {0: "batch"} for name in ["logits", *label]} | {name: {1: "batch"} for name in states + outputs[1:]}
    return [Function("step", StepFunction(model), ["ids", *states, *label], outputs, {"ids": {0: "batch"}} | batch),
            Function("prompt", PromptFunction(model), ["ids", *states, *label], outputs,
                     {"ids": {0: "batch", 1: "length"}} | batch)]


def random_inputs(fn: Function, batch: int = 3, length: int = 5,
                  generator: Optional[torch.Generator] = None) -> tuple[Tensor, ...]:
    """Random inputs for ``fn``: ids, states (standard normal), labels and lengths (1 to ``length``)."""
    cfg = fn.module.model.cfg
    ids_shape = (batch,) if fn.name == "step" else (batch, length)
    out = []
    for name in fn.inputs:
        if name == "ids":
            out.append(torch.randint(0, cfg.vocab_size, ids_shape, generator=generator))
        elif name == "label":
            out.append(torch.randint(0, len(cfg.condition_tokens) + 1, (batch,), generator=generator))
        elif name == "lengths":
            out.append(torch.randint(1, length + 1, (batch,), generator=generator))
        else:
            out.append(torch.randn(cfg.layers, batch, cfg.hidden, generator=generator))
    return tuple(out)


def export_function(fn: Function, dest: Path) -> Path:
    """Write ``fn`` as ``dest/<name>.onnx`` (float32, opset ``OPSET``); returns its path."""
    path = dest / fn.file
    example = random_inputs(fn, batch=2, length=4, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes: nothing to act on
        torch.onnx.export(fn.module.eval(), example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=fn.inputs, output_names=fn.outputs, dynamic_axes=fn.dynamic)
    return path


def session(path: str | os.PathLike):
    """An onnxruntime session for an exported function (on the CPU)."""
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def max_difference(fn: Function, path: str | os.PathLike, inputs: tuple[Tensor, ...], relative: bool = False) -> float:
    """The largest absolute difference between ``fn`` in PyTorch and its export at ``path``, over
    every output, on ``inputs``; ``relative``: each output's divided by its largest magnitude where that is
    above 1 (float32 rounds large values more coarsely)."""
    with torch.no_grad():
        expected = fn.module(*inputs)
    got = session(path).run(fn.outputs, {name: t.numpy() for name, t in zip(fn.inputs, inputs)})
    return max(float((torch.from_numpy(g) - e).abs().max() / (max(1.0, float(e.abs().max())) if relative else 1.0))
               for g, e in zip(got, expected))


def check(fn: Function, path: Path) -> None:
    """Compare the export of ``fn`` with PyTorch on random inputs (a batch size and length other than
    the traced ones); a difference over ``TOLERANCE`` (relative where an output is larger than 1: a
    minGRU / minLSTM's state is unbounded, and so its logits can be large) is an error."""
    inputs = random_inputs(fn, batch=3, length=7, generator=torch.Generator().manual_seed(1))
    diff = max_difference(fn, path, inputs, relative=True)
    if not diff <= TOLERANCE:
        raise TextRNNError(f"{fn.file}: the exported {fn.name} function differs from PyTorch by {diff:.2g} "
                           f"(more than {TOLERANCE}); nothing was exported; please report it with your torch "
                           "and onnx versions")


def metadata(ck: checkpoint.Checkpoint, exported: list[Function], source: str) -> dict[str, Any]:
    """``model.json``: the functions, and what a sampler or classifier needs besides the tokenizer
    (``source``: the run as the user named it)."""
    cfg, tokenizer = ck.model.cfg, ck.tokenizer
    meta: dict[str, Any] = {"format": FORMAT, "textrnn_version": __version__, "exported_from": source,
                            "task": ck.task, "tokenizer": tokenizer.kind, "vocab_size": cfg.vocab_size,
                            "functions": {fn.name: fn.describe() for fn in exported}}
    if ck.task == "classify":
        return meta | {"labels": list(ck.run.labels), "label_aliases": dict(ck.run.label_aliases or {}),
                       "temperature": temperature_of(ck.run), "max_len": ck.run.train.max_len}
    condition = ck.run.condition
    labels = labels_of(condition) or []
    meta |= {"cell": cfg.cell, "layers": cfg.layers, "hidden": cfg.hidden, "state": state_names(cfg.cell),
             "log_probs": cfg.adaptive_softmax,
             "banned": banned_ids(tokenizer, marker_ids(condition, tokenizer)),
             "empty_prompt": encode_prompt(tokenizer, ""), "sampling": declaration(cfg.vocab_size),
             "conditions": [{"label": lab, "start": prompt_start(condition, lab), "index": label_index(condition, lab)}
                            for lab in labels]}
    if tokenizer.kind == "word":  # the rule that rebuilds the spaces between words
        meta["word_spacing"] = {"no_space_before": "".join(sorted(NO_SPACE_BEFORE)),
                                "no_space_after": "".join(sorted(NO_SPACE_AFTER))}
    return meta


def write_functions(model: nn.Module, dest: Path, temperature: float = 1.0) -> list[Function]:
    """Export ``model``'s functions into the folder ``dest``, each checked against PyTorch (a classifier's
    probabilities at ``temperature``)."""
    exported = functions(model, temperature)
    for fn in exported:
        check(fn, export_function(fn, dest))
    return exported


def export_onnx(run: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Export the run (or shipped model) ``run`` as ONNX functions into ``dest``, a new or empty
    directory, with ``tokenizer.json``, ``model.json`` and (language models) ``sample.py``. The
    files are written in a folder beside ``dest`` and moved into place when all are written."""
    require_onnx()
    ck = checkpoint.load(run)
    dest = export_dir(dest)
    tmp = files.temp_dir(dest.parent, f".{dest.name}.")
    try:
        exported = write_functions(ck.model, tmp, temperature_of(ck.run))
        (tmp / checkpoint.TOKENIZER).write_text(ck.tokenizer.to_json(), encoding="utf-8")  # (a plain HF file)
        (tmp / META).write_text(json.dumps(metadata(ck, exported, str(run)), indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
        if ck.task == "lm":
            shutil.copyfile(SAMPLER_SOURCE, tmp / SAMPLER)
        os.replace(tmp, dest)  # (dest is an empty directory: the rename replaces it)
    except OSError as e:
        raise TextRNNError(f"{dest}: cannot write the export ({e.strerror or e}); free disk space or choose "
                           "another DEST") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files.fsync_dir(dest.parent)
    return dest
