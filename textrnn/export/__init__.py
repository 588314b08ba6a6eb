"""Exported forms of a trained model: a smaller checkpoint directory (:mod:`.run`: float16, int8)
and ONNX functions with a standalone sampler (:mod:`.onnx`; ``sample.py`` is package data,
copied beside the functions, never imported by textrnn)."""
