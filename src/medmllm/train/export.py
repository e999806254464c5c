"""Export: merge a LoRA adapter into its base → HF folder → GGUF (F16, Q8_0, Q4_0, Q4_K_M …).

The GGUF writer is the ``gguf`` package (llama.cpp's own Python library); the Llama-architecture
conversion on top of it is what llama.cpp's ``convert_hf_to_gguf.py`` does for Llama models:
tensor names from ``gguf.get_tensor_name_map``, the q/k projection rows permuted into llama.cpp's
rotary layout, norms kept in F32, a tied output head left out (llama.cpp reuses the token
embedding). The tokenizer is copied verbatim from the base GGUF when the model came from one (the
embedded model), else built from ``tokenizer.json`` (byte-level BPE) with ``gguf.BpeVocab``.

Quantisation: ``f32``, ``f16``, ``bf16``, ``q8_0``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1`` with
the ``gguf`` package's numpy quantisers; k-quants (``q4_k_m``, ``q5_k_m``, ``q6_k``, …) with
llama.cpp's own quantiser through llama-cpp-python (``medmllm[edge]``) from an F16 file.

Example:
    >>> from medmllm.train.export import export_gguf
    >>> info = export_gguf("runs/sft/adapter", "sft.q8_0.gguf", quant="q8_0")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from medmllm.errors import InvalidRequestError, MissingDependencyError, NotAnAdapterError

BASE_FILE = "medmllm_base.json"
NUMPY_QUANTS = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
# llama.cpp file types (enum llama_ftype) for the k-quants it quantises itself.
LLAMA_FTYPES = {"q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "q3_k_m": 12}
QUANTS = NUMPY_QUANTS + tuple(LLAMA_FTYPES)


def write_base_record(folder: Path, model: str | None) -> None:
    """Note in an adapter/model folder which base it was trained from (GGUF path if any)."""
    from medmllm.models.defaults import is_gguf, resolve_model_path

    gguf_path = None
    try:
        path = resolve_model_path(model)
        if path.is_file() and is_gguf(path):
            gguf_path = str(path.resolve())
    except Exception:  # a hub id: no local base file to record
        gguf_path = None
    (folder / BASE_FILE).write_text(json.dumps({"model": model, "gguf": gguf_path}, indent=1))


def merge_adapter(folder: str | Path, out_dir: str | Path) -> Path:
    """Merge a LoRA adapter into its base and save a plain HF folder (atomic); a full model
    folder is copied as is."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = Path(folder), Path(out_dir)
    kind = folder_kind(src)
    tmp = Path(tempfile.mkdtemp(prefix=".merge-", dir=out.parent if out.parent.exists() else None))
    try:
        if kind == "adapter":
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
            model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(tmp)
        if (src / BASE_FILE).is_file():
            shutil.copy(src / BASE_FILE, tmp / BASE_FILE)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def folder_kind(folder: Path) -> str:
    """``adapter`` or ``model``; anything else is refused with the reason."""
    if not folder.is_dir():
        raise NotAnAdapterError(
            f"{folder} is not a folder", hint="pass the 'adapter' (or 'model') folder of a run"
        )
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / "config.json").is_file():
        return "model"
    raise NotAnAdapterError(
        f"{folder} is neither a LoRA adapter (no adapter_config.json) nor a model (no config.json)",
        hint="pass <run>/adapter or <run>/model of a finished medmllm train run",
    )


def _permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    # llama.cpp's LlamaModel.permute: HF stores rotary halves, llama.cpp interleaved pairs.
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return (
        weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
        .swapaxes(1, 2)
        .reshape(shape)
    )


def _copy_tokenizer(writer: Any, base_gguf: Path) -> None:
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(base_gguf))
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), vtype)


def _build_tokenizer(writer: Any, folder: Path, n_vocab: int) -> None:
    import gguf

    try:
        vocab = gguf.BpeVocab(folder)
    except Exception as exc:
        raise NotAnAdapterError(
            f"cannot convert the tokenizer of {folder} to GGUF ({exc})",
            hint="GGUF export supports byte-level BPE tokenizers (tokenizer.json)",
        ) from None
    tokens, scores, types = [], [], []
    for text, score, ttype in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(ttype)
    while len(tokens) < n_vocab:  # embedding rows beyond the tokenizer: llama.cpp needs n_vocab
        tokens.append(f"[PAD{len(tokens)}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab).add_to_gguf(writer)


def hf_to_gguf(folder: str | Path, out_path: str | Path, quant: str = "f16") -> Path:
    """Convert a Llama-architecture HF folder to one GGUF file (atomic write).

    Raises:
        InvalidRequestError: an unknown ``quant`` or a non-Llama architecture.
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    src, out = Path(folder), Path(out_path)
    if quant not in NUMPY_QUANTS:
        raise InvalidRequestError(
            f"hf_to_gguf cannot write {quant!r} directly", hint=f"use one of {NUMPY_QUANTS}"
        )
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("model_type") != "llama":
        raise InvalidRequestError(
            f"GGUF export supports Llama-architecture models, got {cfg.get('model_type')!r}",
            hint="convert other architectures with llama.cpp's convert_hf_to_gguf.py",
        )
    n_layers, n_head = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    tensors: dict[str, Any] = {}
    for shard in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    qtype = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "bf16": gguf.GGMLQuantizationType.BF16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q4_0": gguf.GGMLQuantizationType.Q4_0,
        "q4_1": gguf.GGMLQuantizationType.Q4_1,
        "q5_0": gguf.GGMLQuantizationType.Q5_0,
        "q5_1": gguf.GGMLQuantizationType.Q5_1,
    }[quant]
    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
        "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
        "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
        "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1,
    }[quant]
    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(src.name)
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-5))
    writer.add_vocab_size(cfg["vocab_size"])
    writer.add_file_type(ftype)
    base = json.loads((src / BASE_FILE).read_text()) if (src / BASE_FILE).is_file() else {}
    if base.get("gguf") and Path(base["gguf"]).is_file():
        _copy_tokenizer(writer, Path(base["gguf"]))
    else:
        _build_tokenizer(writer, src, cfg["vocab_size"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    for name, tensor in tensors.items():
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise InvalidRequestError(f"no GGUF name for tensor {name!r}")
        data = np.asarray(tensor, dtype=np.float32)
        if name.endswith("q_proj.weight"):
            data = _permute(data, n_head, n_head)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, n_head, n_kv)
        if data.ndim == 1 or quant == "f32":
            writer.add_tensor(new_name, data)
        elif quant == "f16":
            writer.add_tensor(new_name, data.astype(np.float16))
        elif data.shape[-1] % block:
            writer.add_tensor(new_name, data.astype(np.float16))  # rows not a whole block
        else:
            writer.add_tensor(new_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def llama_quantize(f16_path: Path, out_path: Path, quant: str) -> Path:
    """A k-quant file from an F16 GGUF with llama.cpp's quantiser (llama-cpp-python)."""
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependencyError(
            f"--quant {quant} needs llama.cpp's quantiser (llama-cpp-python)",
            hint="pip install 'medmllm[edge]', or use q8_0 / q4_0 (numpy, no extra)",
        ) from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[quant]
    params.nthread = os.cpu_count() or 1
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    rc = llama_cpp.llama_model_quantize(str(f16_path).encode(), str(tmp).encode(), params)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise InvalidRequestError(f"llama.cpp could not quantise {f16_path} to {quant} (rc {rc})")
    os.replace(tmp, out_path)
    return out_path


def export_gguf(
    folder: str | Path, out_path: str | Path, *, quant: str = "q8_0", keep_merged: bool = False
) -> dict[str, Any]:
    """Merge (if an adapter) and write one GGUF file runnable by ``--backend llamacpp``.

    Args:
        folder: ``<run>/adapter`` (LoRA) or ``<run>/model`` (full fine-tune), or any HF folder.
        out_path: the ``.gguf`` file to write.
        quant: one of :data:`QUANTS`.
        keep_merged: keep the merged HF folder beside the GGUF (``<out>.hf``).

    Returns:
        A summary: output path, size, quantisation, seconds per phase.

    Raises:
        NotAnAdapterError: ``folder`` is neither an adapter nor a model folder.
        InvalidRequestError: an unknown quantisation.
    """
    quant = quant.lower()
    if quant not in QUANTS:
        raise InvalidRequestError(
            f"unknown --quant {quant!r}", hint=f"use one of {', '.join(QUANTS)}"
        )
    src, out = Path(folder), Path(out_path)
    folder_kind(src)  # refuses non-adapters before any loading
    out.parent.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start = time.perf_counter()
    merged = out.with_name(out.name + ".hf")
    merge_adapter(src, merged)
    times["merge_s"] = time.perf_counter() - start
    try:
        start = time.perf_counter()
        if quant in NUMPY_QUANTS:
            hf_to_gguf(merged, out, quant)
        else:
            f16 = hf_to_gguf(merged, out.with_name(f".{out.stem}.f16.gguf"), "f16")
            try:
                llama_quantize(f16, out, quant)
            finally:
                f16.unlink(missing_ok=True)
        times["convert_s"] = time.perf_counter() - start
    finally:
        if not keep_merged:
            shutil.rmtree(merged, ignore_errors=True)
    return {
        "output": str(out),
        "quant": quant,
        "bytes": out.stat().st_size,
        "merged": str(merged) if keep_merged else None,
        **{k: round(v, 2) for k, v in times.items()},
    }
