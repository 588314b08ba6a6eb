"""``textrnn export`` (``--format checkpoint``): a run's model copied without its training state,
to ship or share, optionally smaller (float16 weights; int8 matrices with a scale per row).

The export is built in a folder beside DEST and renamed into place when every file is written,
so DEST is either the whole export or as it was (missing, or an empty directory)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import files
from ..checkpoint import CONFIG, METRICS, TOKENIZER, WEIGHTS, Checkpoint, config_json, load, read_metrics
from ..errors import TextRNNError
from ..inference.quantize import quantize_rows
from ..runconfig import RunConfig


def export_dir(dest: str | os.PathLike) -> Path:
    """``dest`` checked for an export: missing or an empty directory (its parent is made here);
    else a user error. The export is then built beside it and renamed onto it (:func:`commit_dir`)."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise TextRNNError(f"{dest}: exists and is not a directory; give a new or empty directory as DEST")
    if dest.exists() and any(dest.iterdir()):
        raise TextRNNError(f"{dest}: exists and is not empty; choose another destination")
    try:
        dest.absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TextRNNError(f"{dest}: cannot create the directory ({e.strerror or e}); "
                           "give a new or empty directory as DEST") from None
    return dest


def cannot_write(dest: Path, e: OSError) -> TextRNNError:
    """The one-line error for an export that could not be written to ``dest``."""
    return TextRNNError(f"{dest}: cannot write the export ({e.strerror or e}); free disk space or choose "
                        "another DEST")


def export(run_dir: str | os.PathLike, dest: str | os.PathLike, *, half: bool = False,
           int8_embedding: bool = False, int8: bool = False) -> Path:
    """Copy a run's model (best weights, config, tokenizer, metrics) without its training
    state, to ship or share it. ``half`` stores the weights as float16; ``int8_embedding``
    stores the embedding matrix as int8 with one float32 scale per row (a quarter of the
    size); ``int8`` the recurrent weight matrices too, and a model so exported then runs its
    step-by-step products on a CPU in int8 (:mod:`textrnn.inference.quantize`: a classifier's CpuReader, a
    language model's Stepper). All load back as float32. ``dest`` is written whole or not at all:
    a failure to write is a one-line error that leaves it as it was."""
    ck = load(run_dir)
    dest = export_dir(dest)
    tensors = _tensors(ck, half, int8_embedding or int8, int8)
    # (the source's dtypes do not carry over: an int8 export exported again loads as float32, is stored as asked)
    run = dataclasses.replace(ck.run, exported_from=str(Path(run_dir)), weights_dtype="float16" if half else "float32",
                              embedding_dtype="int8" if int8_embedding or int8 else None,
                              recurrent_dtype="int8" if int8 else None)
    try:
        tmp = files.temp_dir(dest.absolute().parent, f".{dest.name}.")
    except OSError as e:
        raise cannot_write(dest, e) from None
    try:
        _write(tmp, ck, run, tensors)
        os.replace(tmp, dest)  # (dest is missing or an empty directory: the rename replaces it)
        files.fsync_dir(dest.absolute().parent)
    except OSError as e:
        raise cannot_write(dest, e) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _tensors(ck: Checkpoint, half: bool, int8_embedding: bool, int8: bool) -> dict[str, torch.Tensor]:
    """The tensors to save: float16 copies with ``half``; the
    embedding (``int8_embedding``) and the recurrent matrices (``int8``) as int8 codes with a float32
    scale per row (float16 would make the scales of rows of small weights subnormal, or zero)."""
    state = ck.model.state_dict()
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state.items()}
    if ck.model.cfg.tie_weights:
        tensors.pop("head.weight", None)  # shared with the embedding; loading re-ties it
    as_int8 = ["encoder.embedding.weight"] if int8_embedding else []
    if int8:
        as_int8 += [k for k in tensors if k.startswith("encoder.rnn.weight_")]
    for name in as_int8:  # int8 codes and a scale per row (load_weights expands them)
        codes, scale = quantize_rows(state[name])  # (R, C) int8, (R,) float32: from the float32 weights
        del tensors[name]
        tensors[name + ".int8"], tensors[name + ".scale"] = codes, scale
    return tensors


def _write(folder: Path, ck: Checkpoint, run: RunConfig, tensors: dict[str, torch.Tensor]) -> None:
    """The export's files, each flushed to disk, in ``folder``; an OSError propagates."""
    files.atomic_write(folder / TOKENIZER, ck.tokenizer.to_json())
    files.atomic_write(folder / CONFIG, config_json(run))
    files.atomic_write(folder / METRICS, "".join(json.dumps(m, ensure_ascii=False) + "\n"
                                                 for m in read_metrics(ck.path)))
    tmp = files.temp_beside(folder / WEIGHTS)
    save_file(tensors, str(tmp))
    files.commit(tmp, folder / WEIGHTS)
