"""The four kinds of export: merged model, adapter alone, bitsandbytes 4/8-bit, GGUF."""
from __future__ import annotations

import shutil
from pathlib import Path

from .card import write_card
from .common import (DTYPE_BYTES, DTYPES, GGUF_TYPES, QUANT_BITS, ExportError, ExportResult, Progress,
                     check_disk_space, export_name, exports_dir, no_progress, staged)
from .source import RunSource, estimated_parameters, load_merged, load_tokenizer, run_source


def _param_bytes(model, bytes_per_param: float) -> int:
    return int(sum(p.numel() for p in model.parameters()) * bytes_per_param)


def _save_generation_config(model, folder: Path) -> None:
    """Greedy-by-default decoding settings next to the weights, with the chat model's stop token."""
    from transformers import GenerationConfig

    gen = model.generation_config if getattr(model, "generation_config", None) else GenerationConfig()
    gen.save_pretrained(folder)


def _check_early(src: RunSource, target: Path, bytes_per_param: float, what: str) -> None:
    """Before loading anything: refuse at once when the weight files alone would not fit."""
    params = estimated_parameters(src)
    if params:
        check_disk_space(target.parent, int(params * bytes_per_param), what)


def _target(run_dir: Path, out_dir: Path | None, name: str) -> Path:
    return Path(out_dir) if out_dir else exports_dir(run_dir) / name


def _save_model_folder(model, tokenizer, folder: Path, max_shard_size: str) -> None:
    model.save_pretrained(folder, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(folder)
    _save_generation_config(model, folder)


def export_merged(run_dir: Path, dtype: str = "fp32", checkpoint: str | None = None,
                  out_dir: Path | None = None, max_shard_size: str = "2GB", with_zip: bool = True,
                  progress: Progress = no_progress) -> ExportResult:
    """The adapter merged into the base (or a full run's model), saved in `dtype`, sharded.

    Prompt/prefix tuning cannot be merged: their adapter is exported instead, with a card that
    says so and how to load it."""
    import torch

    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
    src = run_source(run_dir, checkpoint)
    if src.is_adapter and not src.mergeable:
        result = export_adapter(run_dir, checkpoint, out_dir=out_dir, with_zip=with_zip, progress=progress)
        result.notes.append(f"{src.method} cannot be merged into the base: exported the adapter instead")
        return result
    target = _target(src.run_dir, out_dir, export_name("merged", dtype))
    _check_early(src, target, DTYPE_BYTES[dtype] * (2 if with_zip else 1), f"the merged {dtype} model")
    progress(0.05, "loading the base model and the adapter")
    model = load_merged(src).to(getattr(torch, DTYPES[dtype]))
    tokenizer = load_tokenizer(src)
    check_disk_space(target.parent, _param_bytes(model, DTYPE_BYTES[dtype]) * (2 if with_zip else 1),
                     f"the merged {dtype} model")
    progress(0.5, "saving the merged model")
    with staged(target, with_zip) as tmp:
        _save_model_folder(model, tokenizer, tmp, max_shard_size)
        write_card(tmp, src, "merged", f"The adapter is merged into the base weights, saved in {dtype}"
                   if src.is_adapter else f"The whole tuned model, saved in {dtype}.")
        progress(0.85, "packing the zip" if with_zip else "finishing")
    return ExportResult(target, _zip_of(target, with_zip), "merged")


def _zip_of(target: Path, with_zip: bool) -> Path | None:
    return target.with_name(target.name + ".zip") if with_zip else None


def export_adapter(run_dir: Path, checkpoint: str | None = None, out_dir: Path | None = None,
                   with_zip: bool = True, progress: Progress = no_progress) -> ExportResult:
    src = run_source(run_dir, checkpoint)
    if not src.is_adapter:
        raise ExportError(f"{src.folder} holds no adapter (this run trained the whole model): "
                          f"export it merged instead")
    target = _target(src.run_dir, out_dir, export_name("adapter"))
    size = sum(p.stat().st_size for p in src.folder.rglob("*") if p.is_file())
    check_disk_space(target.parent, size * (2 if with_zip else 1), "the adapter")
    progress(0.3, "copying the adapter")
    with staged(target, with_zip) as tmp:
        for path in src.folder.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        details = ("The adapter alone; load it on top of the base model with peft." if src.mergeable else
                   f"{src.method} cannot be merged into the base weights: it adds learned virtual "
                   f"tokens in front of every input, so it is loaded on top of the base with peft.")
        write_card(tmp, src, "adapter", details)
    return ExportResult(target, _zip_of(target, with_zip), "adapter")


def export_quantized(run_dir: Path, bits: str = "4bit", checkpoint: str | None = None,
                     out_dir: Path | None = None, with_zip: bool = True, max_shard_size: str = "2GB",
                     progress: Progress = no_progress) -> ExportResult:
    """The merged model quantized with bitsandbytes (nf4 or int8) in a folder `from_pretrained`
    reloads as it is (bitsandbytes installed)."""
    import tempfile

    from transformers import AutoModelForCausalLM

    from .. import models

    if bits not in QUANT_BITS:
        raise ExportError(f"quantize must be one of {', '.join(QUANT_BITS)}, got '{bits}'")
    src = run_source(run_dir, checkpoint)
    target = _target(src.run_dir, out_dir, export_name("bnb", quantize=bits))
    _check_early(src, target, 4.6, f"the {bits} model")
    progress(0.05, "loading the base model and the adapter")
    merged = load_merged(src)
    tokenizer = load_tokenizer(src)
    # a float copy is written first (bitsandbytes quantizes while loading), then the quantized one
    check_disk_space(target.parent, _param_bytes(merged, 4 + (1 if bits == "8bit" else 0.6) *
                                                 (2 if with_zip else 1)), f"the {bits} model")
    with staged(target, with_zip) as tmp:
        with tempfile.TemporaryDirectory(prefix=".float-", dir=target.parent) as scratch:
            progress(0.35, "saving a float copy to quantize")
            merged.save_pretrained(scratch)
            del merged
            progress(0.55, f"quantizing to {bits}")
            quant = models.bnb_config(4 if bits == "4bit" else 8, "nf4", True, None)
            device = "cuda" if models.device_type() == "cuda" else "cpu"
            model = AutoModelForCausalLM.from_pretrained(scratch, quantization_config=quant,
                                                         dtype="float32" if device == "cpu" else "auto",
                                                         device_map={"": 0 if device == "cuda" else "cpu"})
            progress(0.75, "saving the quantized model")
            _save_model_folder(model, tokenizer, tmp, max_shard_size)
        write_card(tmp, src, "bnb", f"The merged model quantized to {bits} with bitsandbytes "
                   f"({'nf4, double quantization' if bits == '4bit' else 'LLM.int8'}).")
    return ExportResult(target, _zip_of(target, with_zip), "bnb")


def export_gguf(run_dir: Path, qtype: str = "q8_0", checkpoint: str | None = None,
                out_dir: Path | None = None, progress: Progress = no_progress) -> ExportResult:
    """One GGUF file (f16 or q8_0) of the merged model, a Modelfile for Ollama, and a card."""
    from .gguf_file import check_supported, modelfile, write_gguf

    if qtype not in GGUF_TYPES:
        raise ExportError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}, got '{qtype}'")
    src = run_source(run_dir, checkpoint)
    target = _target(src.run_dir, out_dir, export_name("gguf", gguf_type=qtype))
    _check_early(src, target, 2 if qtype == "f16" else 1.07, f"the GGUF {qtype} file")
    progress(0.05, "loading the base model and the adapter")
    model = load_merged(src)
    check_supported(model.config)
    tokenizer = load_tokenizer(src)
    check_disk_space(target.parent, _param_bytes(model, 2 if qtype == "f16" else 1.07), f"the GGUF {qtype} file")
    file_name = f"{src.run_dir.name}-{qtype}.gguf"
    with staged(target) as tmp:
        write_gguf(model, tokenizer, tmp / file_name, qtype, name=src.run_dir.name, progress=progress)
        (tmp / "Modelfile").write_text(modelfile(file_name, tokenizer), encoding="utf-8")
        write_card(tmp, src, "gguf", f"The merged model as one GGUF file ({qtype}) for llama.cpp and "
                   f"Ollama, with an Ollama Modelfile.", extra=file_name)
    return ExportResult(target, target / file_name, "gguf")


def run_export(run_dir: Path, kind: str, dtype: str = "fp32", quantize: str = "4bit",
               gguf_type: str = "q8_0", checkpoint: str | None = None, out_dir: Path | None = None,
               max_shard_size: str = "2GB", with_zip: bool = True,
               progress: Progress = no_progress) -> ExportResult:
    """One entry point for every kind (the CLI, the UI's background job and the tests use it)."""
    if kind == "merged":
        return export_merged(run_dir, dtype, checkpoint, out_dir, max_shard_size, with_zip, progress)
    if kind == "adapter":
        return export_adapter(run_dir, checkpoint, out_dir, with_zip, progress)
    if kind == "bnb":
        return export_quantized(run_dir, quantize, checkpoint, out_dir, with_zip, max_shard_size, progress)
    if kind == "gguf":
        return export_gguf(run_dir, gguf_type, checkpoint, out_dir, progress)
    raise ExportError(f"unknown export kind '{kind}' (merged, adapter, bnb or gguf)")


def merge_adapter(run_dir: Path, out_dir: Path | None = None, dtype: str = "fp32",
                  checkpoint: str | None = None, max_shard_size: str = "2GB") -> Path:
    """The merged model folder alone (no zip)."""
    return export_merged(run_dir, dtype, checkpoint, out_dir, max_shard_size, with_zip=False).folder
