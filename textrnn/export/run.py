"""``textrnn export`` (``--format checkpoint``): a run's model copied without its training state,
to ship or share, optionally smaller (float16 weights; int8 matrices with a scale per row)."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file

from .. import files
from ..checkpoint import WEIGHTS, load, read_metrics, write_metrics, write_run_files
from ..errors import TextRNNError
from ..inference.quantize import quantize_rows


def export_dir(dest: str | os.PathLike) -> Path:
    """``dest`` made ready for an export: a new or empty directory (made here); else a user error."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise TextRNNError(f"{dest}: exists and is not a directory; give a new or empty directory as DEST")
    if dest.exists() and any(dest.iterdir()):
        raise TextRNNError(f"{dest}: exists and is not empty; choose another destination")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TextRNNError(f"{dest}: cannot create the directory ({e.strerror or e}); "
                           "give a new or empty directory as DEST") from None
    return dest


def export(run_dir: str | os.PathLike, dest: str | os.PathLike, *, half: bool = False,
           int8_embedding: bool = False, int8: bool = False) -> Path:
    """Copy a run's model (best weights, config, tokenizer, metrics) without its training
    state, to ship or share it. ``half`` stores the weights as float16; ``int8_embedding``
    stores the embedding matrix as int8 with one float scale per row (a quarter of the
    size); ``int8`` the recurrent weight matrices too, and a model so exported then runs its
    step-by-step products on a CPU in int8 (:mod:`textrnn.inference.quantize`: a classifier's Reader, a
    language model's Stepper). All load back as float32."""
    ck = load(run_dir)
    dest = export_dir(dest)
    config = dict(ck.config, exported_from=str(Path(run_dir)), weights_dtype="float16" if half else "float32")
    state = ck.model.state_dict()
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in state.items()}
    if ck.model.cfg.tie_weights:
        tensors.pop("head.weight", None)  # shared with the embedding; loading re-ties it
    as_int8 = ["encoder.embedding.weight"] if int8_embedding or int8 else []
    if int8:
        as_int8 += [k for k in tensors if k.startswith("encoder.rnn.weight_")]
        config["recurrent_dtype"] = "int8"
    for name in as_int8:  # int8 codes and a scale per row (load_weights expands them)
        codes, scale = quantize_rows(state[name])  # from the float32 weights, not their float16 copy
        del tensors[name]
        tensors[name + ".int8"], tensors[name + ".scale"] = codes, scale.half() if half else scale
    if as_int8:
        config["embedding_dtype"] = "int8"
    write_run_files(dest, config, ck.tokenizer)  # after config is complete
    write_metrics(dest, read_metrics(run_dir))
    tmp = files.temp_beside(dest / WEIGHTS)
    save_file(tensors, str(tmp))
    files.commit(tmp, dest / WEIGHTS)
    return dest
