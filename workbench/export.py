"""Exports of a run: the merged model, the adapter alone, zipped for download.

Everything is written under saves/<run>/exports/ into a temporary name first and renamed
when complete, so nothing half-written ever lists as an export.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .chat import run_config
from .config import DEFAULT_MODEL
from .train import FINAL_DIR

EXPORTS_DIR = "exports"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class ExportError(RuntimeError):
    pass


@dataclass
class ExportResult:
    folder: Path | None
    archive: Path | None

    def describe(self) -> str:
        return str(self.archive or self.folder)


def exports_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EXPORTS_DIR


def source_folder(run_dir: Path, checkpoint: str | None = None) -> Path:
    folder = Path(run_dir) / (checkpoint or FINAL_DIR)
    if not folder.is_dir():
        raise ExportError(f"{folder} does not exist: the run has no saved result yet")
    return folder


def _fresh_tmp(target: Path) -> Path:
    tmp = target.parent / f".{target.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def _swap_in(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.replace(tmp, target)


def merge_adapter(run_dir: Path, out_dir: Path | None = None, dtype: str = "fp32",
                  checkpoint: str | None = None, max_shard_size: str = "2GB") -> Path:
    """Merge a LoRA-family adapter into a float copy of its base; save a plain model folder."""
    import torch
    from peft import PeftModel

    from . import models

    run_dir = Path(run_dir)
    adapter = source_folder(run_dir, checkpoint)
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"{adapter} holds no adapter: nothing to merge (a full or freeze run "
                          f"is already a whole model)")
    cfg = run_config(run_dir)
    base_name = cfg.get("model_name_or_path", DEFAULT_MODEL)
    out_dir = Path(out_dir or exports_dir(run_dir) / f"merged-{dtype}")
    torch_dtype = getattr(torch, DTYPES[dtype])
    # merge into float weights, never into a 4/8-bit copy: quantized runs reload the base in float
    base = models.load_causal_lm(base_name, compute_type="fp32", device="cpu")
    try:
        model = PeftModel.from_pretrained(base, str(adapter))
    except ValueError as err:
        raise ExportError(f"cannot load the adapter in {adapter}: {err}") from None
    if not hasattr(model, "merge_and_unload") or cfg.get("finetuning_type") in ("prompt_tuning", "prefix_tuning"):
        raise ExportError(f"{cfg.get('finetuning_type')} adapters cannot be merged; export the adapter instead")
    merged = model.merge_and_unload().to(torch_dtype)
    tokenizer = models.load_tokenizer(str(adapter))
    tmp = _fresh_tmp(out_dir)
    merged.save_pretrained(tmp, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(tmp)
    _swap_in(tmp, out_dir)
    return out_dir


def zip_folder(folder: Path, archive: Path | None = None) -> Path:
    """Zip a folder (stored, not compressed: weights do not compress) into <folder>.zip."""
    folder = Path(folder)
    archive = Path(archive or folder.with_suffix(".zip"))
    tmp = _fresh_tmp(archive)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, arcname=f"{folder.name}/{path.relative_to(folder)}")
    _swap_in(tmp, archive)
    return archive


def export_adapter(run_dir: Path, checkpoint: str | None = None) -> ExportResult:
    source = source_folder(Path(run_dir), checkpoint)
    if not (source / "adapter_config.json").is_file():
        raise ExportError(f"{source} holds no adapter (this run trained the whole model)")
    target = exports_dir(Path(run_dir)) / "adapter"
    tmp = _fresh_tmp(target)
    shutil.copytree(source, tmp)
    _swap_in(tmp, target)
    return ExportResult(target, zip_folder(target))


def export_merged(run_dir: Path, dtype: str = "fp32", checkpoint: str | None = None) -> ExportResult:
    folder = merge_adapter(Path(run_dir), dtype=dtype, checkpoint=checkpoint)
    return ExportResult(folder, zip_folder(folder))


def list_exports(run_dir: Path) -> list[Path]:
    """Complete exports (folders and archives), never the temporary ones."""
    root = exports_dir(Path(run_dir))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def delete_export(run_dir: Path, name: str) -> None:
    root = exports_dir(Path(run_dir)).resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise ExportError(f"not an export of this run: {name}")
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
