"""The four kinds of export: merged model, adapter alone, bitsandbytes 4/8-bit, GGUF."""

from __future__ import annotations

import shutil
from pathlib import Path

from .card import write_card
from .common import (
    BNB_BYTES,
    DTYPE_BYTES,
    DTYPES,
    GGUF_BYTES,
    GGUF_TYPES,
    MERGED_DTYPES,
    QUANT_BITS,
    ExportError,
    ExportResult,
    Progress,
    check_disk_space,
    export_name,
    exports_dir,
    no_progress,
    staged,
)
from .source import (
    RunSource,
    base_dtype,
    embedding_parameters,
    estimated_parameters,
    load_merged,
    load_tokenizer,
    run_source,
)


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


def _parity_of(kind: str, number_format: str, src: RunSource, tokenizer, reload, progress: Progress):
    """Replay the prompts on the trained model, then on the export `reload()` gives back in its
    target runtime; a failure to reload is itself the report's finding."""
    from . import parity

    progress(0.65, "parity: answers of the trained model")
    try:
        reference = parity.reference_answers(src, tokenizer)
        progress(0.8, "parity: reloading the export")
        report = reload(reference)
    except ExportError as err:
        report = parity.ParityReport(kind, number_format, "", "", status="failed", reason=str(err))
    except Exception as err:  # noqa: BLE001 - reported, the export itself is kept
        report = parity.ParityReport(
            kind, number_format, "", "", status="failed", reason=f"{type(err).__name__}: {err}"
        )
    progress(0.9, report.summary())
    return report


def _transformers_reload(kind: str, number_format: str, folder: Path, tokenizer, runtime: str, **load_kwargs):
    def reload(reference):
        from transformers import AutoModelForCausalLM

        from .parity import check_transformers

        model = AutoModelForCausalLM.from_pretrained(folder, **load_kwargs).eval()
        return check_transformers(kind, number_format, model, reference, tokenizer, runtime)

    return reload


def resolve_dtype(src: RunSource, dtype: str | None) -> str:
    if dtype in (None, "", "auto"):
        return base_dtype(src)
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(MERGED_DTYPES)}, got '{dtype}'")
    return dtype


def export_merged(
    run_dir: Path,
    dtype: str = "auto",
    checkpoint: str | None = None,
    out_dir: Path | None = None,
    max_shard_size: str = "2GB",
    with_zip: bool = True,
    progress: Progress = no_progress,
    parity: bool = True,
) -> ExportResult:
    """The adapter merged into the base (or a full run's model), saved in `dtype` (auto: the base
    model's own dtype), sharded, with a parity report.

    Prompt/prefix tuning cannot be merged: their adapter is exported instead, with a card that
    says so and how to load it."""
    import torch

    if dtype not in (None, "") and dtype not in MERGED_DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(MERGED_DTYPES)}, got '{dtype}'")
    src = run_source(run_dir, checkpoint)
    if src.is_adapter and not src.mergeable:
        result = export_adapter(
            run_dir, checkpoint, out_dir=out_dir, with_zip=with_zip, progress=progress, parity=parity
        )
        result.notes.append(f"{src.method} cannot be merged into the base: exported the adapter instead")
        return result
    dtype = resolve_dtype(src, dtype)
    target = _target(src.run_dir, out_dir, export_name("merged", dtype))
    _check_early(src, target, DTYPE_BYTES[dtype] * (2 if with_zip else 1), f"the merged {dtype} model")
    progress(0.05, "loading the base model and the adapter")
    model = load_merged(src).to(getattr(torch, DTYPES[dtype]))
    tokenizer = load_tokenizer(src)
    check_disk_space(
        target.parent, _param_bytes(model, DTYPE_BYTES[dtype]) * (2 if with_zip else 1), f"the merged {dtype} model"
    )
    progress(0.5, "saving the merged model")
    report = None
    with staged(target, with_zip) as tmp:
        _save_model_folder(model, tokenizer, tmp, max_shard_size)
        del model
        if parity:
            report = _parity_of(
                "merged",
                dtype,
                src,
                tokenizer,
                _transformers_reload("merged", dtype, tmp, tokenizer, f"transformers ({dtype})", dtype="auto"),
                progress,
            )
            _write_parity(tmp, report)
        write_card(
            tmp,
            src,
            "merged",
            f"The adapter is merged into the base weights, saved in {dtype}."
            if src.is_adapter
            else f"The whole tuned model, saved in {dtype}.",
            parity=report,
        )
        progress(0.95, "packing the zip" if with_zip else "finishing")
    return ExportResult(target, _zip_of(target, with_zip), "merged", parity=_as_dict(report))


def _write_parity(folder: Path, report) -> None:
    from .parity import write_parity

    write_parity(folder, report)


def _as_dict(report) -> dict | None:
    return report.to_dict() if report is not None else None


def _zip_of(target: Path, with_zip: bool) -> Path | None:
    return target.with_name(target.name + ".zip") if with_zip else None


def export_adapter(
    run_dir: Path,
    checkpoint: str | None = None,
    out_dir: Path | None = None,
    with_zip: bool = True,
    progress: Progress = no_progress,
    parity: bool = True,
) -> ExportResult:
    src = run_source(run_dir, checkpoint)
    if not src.is_adapter:
        raise ExportError(f"{src.folder} holds no adapter (this run trained the whole model): export it merged instead")
    target = _target(src.run_dir, out_dir, export_name("adapter"))
    size = sum(p.stat().st_size for p in src.folder.rglob("*") if p.is_file())
    check_disk_space(target.parent, size * (2 if with_zip else 1), "the adapter")
    progress(0.3, "copying the adapter")
    report = None
    with staged(target, with_zip) as tmp:
        for path in src.folder.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        if parity:
            report = _parity_of("adapter", "adapter", src, load_tokenizer(src), _adapter_reload(src, tmp), progress)
            _write_parity(tmp, report)
        details = (
            "The adapter alone; load it on top of the base model with peft."
            if src.mergeable
            else f"{src.method} cannot be merged into the base weights: it adds learned virtual "
            f"tokens in front of every input, so it is loaded on top of the base with peft."
        )
        write_card(tmp, src, "adapter", details, parity=report)
    return ExportResult(target, _zip_of(target, with_zip), "adapter", parity=_as_dict(report))


def _adapter_reload(src: RunSource, folder: Path):
    def reload(reference):
        from peft import PeftModel

        from .. import models
        from .parity import check_transformers

        base = models.load_causal_lm(src.base_model, compute_type="fp32", device="cpu")
        model = PeftModel.from_pretrained(base, str(folder)).eval()
        return check_transformers(
            "adapter", "adapter", model, reference, load_tokenizer(src), "transformers + peft (fp32)"
        )

    return reload


def export_quantized(
    run_dir: Path,
    bits: str = "4bit",
    checkpoint: str | None = None,
    out_dir: Path | None = None,
    with_zip: bool = True,
    max_shard_size: str = "2GB",
    progress: Progress = no_progress,
    parity: bool = True,
) -> ExportResult:
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
    check_disk_space(
        target.parent,
        _param_bytes(merged, 4 + (1 if bits == "8bit" else 0.6) * (2 if with_zip else 1)),
        f"the {bits} model",
    )
    with staged(target, with_zip) as tmp:
        with tempfile.TemporaryDirectory(prefix=".float-", dir=target.parent) as scratch:
            progress(0.35, "saving a float copy to quantize")
            merged.save_pretrained(scratch)
            del merged
            progress(0.55, f"quantizing to {bits}")
            quant = models.bnb_config(4 if bits == "4bit" else 8, "nf4", True, None)
            device = "cuda" if models.device_type() == "cuda" else "cpu"
            model = AutoModelForCausalLM.from_pretrained(
                scratch,
                quantization_config=quant,
                dtype="float32" if device == "cpu" else "auto",
                device_map={"": 0 if device == "cuda" else "cpu"},
            )
            progress(0.6, "saving the quantized model")
            _save_model_folder(model, tokenizer, tmp, max_shard_size)
            del model
        report = None
        if parity:
            number_format = "nf4" if bits == "4bit" else "int8"
            report = _parity_of(
                "bnb",
                number_format,
                src,
                tokenizer,
                _transformers_reload(
                    "bnb",
                    number_format,
                    tmp,
                    tokenizer,
                    f"transformers + bitsandbytes ({number_format})",
                    dtype="float32" if device == "cpu" else "auto",
                    device_map={"": 0 if device == "cuda" else "cpu"},
                ),
                progress,
            )
            _write_parity(tmp, report)
        write_card(
            tmp,
            src,
            "bnb",
            f"The merged model quantized to {bits} with bitsandbytes "
            f"({'nf4, double quantization' if bits == '4bit' else 'LLM.int8'}).",
            parity=report,
        )
    return ExportResult(target, _zip_of(target, with_zip), "bnb", parity=_as_dict(report))


def export_gguf(
    run_dir: Path,
    qtype: str = "q8_0",
    checkpoint: str | None = None,
    out_dir: Path | None = None,
    progress: Progress = no_progress,
    parity: bool = True,
) -> ExportResult:
    """One GGUF file of the merged model, a Modelfile for Ollama, a card, and a parity report
    made by loading the file in llama.cpp."""
    from .gguf_file import check_supported, modelfile, write_gguf

    if qtype not in GGUF_TYPES:
        raise ExportError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}, got '{qtype}'")
    src = run_source(run_dir, checkpoint)
    target = _target(src.run_dir, out_dir, export_name("gguf", gguf_type=qtype))
    _check_early(src, target, GGUF_BYTES[qtype], f"the GGUF {qtype} file")
    progress(0.05, "loading the base model and the adapter")
    model = load_merged(src)
    check_supported(model.config)
    tokenizer = load_tokenizer(src)
    check_disk_space(target.parent, _param_bytes(model, GGUF_BYTES[qtype]), f"the GGUF {qtype} file")
    file_name = f"{src.run_dir.name}-{qtype}.gguf"
    report = None
    with staged(target) as tmp:
        write_gguf(
            model,
            tokenizer,
            tmp / file_name,
            qtype,
            name=src.run_dir.name,
            progress=progress,
            base_model=src.base_model,
        )
        del model
        (tmp / "Modelfile").write_text(modelfile(file_name, tokenizer), encoding="utf-8")
        if parity:

            def reload(reference):
                from .parity import check_gguf

                return check_gguf(tmp / file_name, qtype, reference, tokenizer)

            report = _parity_of("gguf", f"gguf-{qtype}", src, tokenizer, reload, progress)
            _write_parity(tmp, report)
        write_card(
            tmp,
            src,
            "gguf",
            f"The merged model as one GGUF file ({qtype}) for llama.cpp and Ollama, with an Ollama Modelfile.",
            extra=file_name,
            parity=report,
        )
    return ExportResult(target, target / file_name, "gguf", parity=_as_dict(report))


def run_export(
    run_dir: Path,
    kind: str,
    dtype: str = "auto",
    quantize: str = "4bit",
    gguf_type: str = "q8_0",
    checkpoint: str | None = None,
    out_dir: Path | None = None,
    max_shard_size: str = "2GB",
    with_zip: bool = True,
    progress: Progress = no_progress,
    parity: bool = True,
) -> ExportResult:
    """One entry point for every kind (the CLI, the UI's background job and the tests use it)."""
    if kind == "merged":
        return export_merged(run_dir, dtype, checkpoint, out_dir, max_shard_size, with_zip, progress, parity)
    if kind == "adapter":
        return export_adapter(run_dir, checkpoint, out_dir, with_zip, progress, parity)
    if kind == "bnb":
        return export_quantized(run_dir, quantize, checkpoint, out_dir, with_zip, max_shard_size, progress, parity)
    if kind == "gguf":
        return export_gguf(run_dir, gguf_type, checkpoint, out_dir, progress, parity)
    raise ExportError(f"unknown export kind '{kind}' (merged, adapter, bnb or gguf)")


def merge_adapter(
    run_dir: Path,
    out_dir: Path | None = None,
    dtype: str = "auto",
    checkpoint: str | None = None,
    max_shard_size: str = "2GB",
) -> Path:
    """The merged model folder alone (no zip)."""
    return export_merged(run_dir, dtype, checkpoint, out_dir, max_shard_size, with_zip=False).folder


def expected_size(
    run_dir: Path,
    kind: str,
    dtype: str = "auto",
    quantize: str = "4bit",
    gguf_type: str = "q8_0",
    checkpoint: str | None = None,
) -> int | None:
    """About how many bytes the export will take (its folder, without the zip), from the weight
    files on disk, before anything is loaded; None when that cannot be told (a hub base)."""
    src = run_source(run_dir, checkpoint)
    if kind == "adapter" or (kind == "merged" and src.is_adapter and not src.mergeable):
        return sum(p.stat().st_size for p in src.folder.rglob("*") if p.is_file()) if src.is_adapter else None
    params = estimated_parameters(src)
    if not params:
        return None
    if kind == "merged":
        return int(params * DTYPE_BYTES[resolve_dtype(src, dtype)])
    if kind == "bnb":
        return int(params * BNB_BYTES.get(quantize, 1.0))
    if kind == "gguf":
        # under 4/5-bit types the token embedding is kept at q8_0 (see gguf_file._tensor_data)
        wide = embedding_parameters(src) if gguf_type.startswith(("q4", "q5")) else 0
        return int((params - wide) * GGUF_BYTES.get(gguf_type, 2.0) + wide * GGUF_BYTES["q8_0"])
    raise ExportError(f"unknown export kind '{kind}' (merged, adapter, bnb or gguf)")
