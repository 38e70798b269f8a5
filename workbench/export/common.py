"""What every export shares: names, staged writes, the disk-space check, progress and zips.

An export is written into a hidden temporary folder next to its target and renamed into place
only when complete, so an interrupted export never lists as one. Its zip (if any) is renamed in
first and the folder last: the folder is the commit point, and an orphan zip is never listed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EXPORTS_DIR = "exports"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
KINDS = ("merged", "adapter", "bnb", "gguf")
QUANT_BITS = ("4bit", "8bit")
MERGED_DTYPES = ("auto",) + tuple(DTYPES)  # auto: the base model's own dtype
# what the `gguf` package writes itself; k-quants (Q4_K_M...) need llama.cpp's own llama-quantize
GGUF_TYPES = ("f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")
# bytes per weight of each GGUF type (blocks of 32 values: scale(s) + packed values)
GGUF_BYTES = {
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}
BNB_BYTES = {"4bit": 0.56, "8bit": 1.06}  # per weight, with the scales; embeddings stay 16-bit
SHARD_SIZES = ("500MB", "1GB", "2GB", "5GB", "10GB")
MARGIN_BYTES = 64 * 2**20

Progress = Callable[[float, str], None]


class ExportError(RuntimeError):
    """An export that cannot be made; the message says what is wrong and where."""


def no_progress(fraction: float, message: str) -> None:
    pass


@dataclass
class ExportResult:
    folder: Path | None
    archive: Path | None
    kind: str = "merged"
    notes: list[str] = field(default_factory=list)
    parity: dict | None = None  # the parity report (parity.json), when one was made

    def describe(self) -> str:
        return str(self.archive or self.folder)


def exports_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EXPORTS_DIR


def export_name(kind: str, dtype: str = "fp32", quantize: str = "4bit", gguf_type: str = "q8_0") -> str:
    if kind == "merged":
        return f"merged-{dtype}"
    if kind == "adapter":
        return "adapter"
    if kind == "bnb":
        return f"bnb-{quantize}"
    if kind == "gguf":
        return f"gguf-{gguf_type}"
    raise ExportError(f"unknown export kind '{kind}' (choose one of {', '.join(KINDS)})")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def tmp_path_for(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp"


@contextlib.contextmanager
def staged(target: Path, with_zip: bool = False):
    """Yield a fresh temporary folder; on success it becomes `target` (and its zip
    `target.zip`, made from it); on any failure or interruption it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(target)
    tmp_zip = target.parent / f".{target.name}.zip.tmp"
    for stale in (tmp, tmp_zip):
        _remove(stale)
    tmp.mkdir()
    try:
        yield tmp
        match_file_modes(tmp)
        archive = target.with_name(target.name + ".zip")
        if with_zip:
            write_zip(tmp, tmp_zip, arc_root=target.name)
        # an older export of the same name goes first; the folder rename is the commit point
        _remove(target)
        _remove(archive)
        if with_zip:
            os.replace(tmp_zip, archive)
        os.replace(tmp, target)
    finally:
        _remove(tmp)
        _remove(tmp_zip)


def match_file_modes(folder: Path) -> None:
    """Every written file gets the mode a plain new file gets (some writers create theirs 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in Path(folder).rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def write_zip(folder: Path, archive: Path, arc_root: str | None = None) -> Path:
    """Stored, not compressed: weights do not compress, and storing is fast."""
    folder, archive = Path(folder), Path(archive)
    root = arc_root or folder.name
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, arcname=f"{root}/{path.relative_to(folder).as_posix()}")
    return archive


def zip_folder(folder: Path, archive: Path | None = None) -> Path:
    """Zip a finished folder into <folder>.zip (written under a temporary name first)."""
    folder = Path(folder)
    archive = Path(archive or folder.with_name(folder.name + ".zip"))
    tmp = archive.parent / f".{archive.name}.tmp"
    try:
        write_zip(folder, tmp, arc_root=folder.name)
        os.replace(tmp, archive)
    finally:
        _remove(tmp)
    return archive


# ---- disk space ----------------------------------------------------------------------------
def free_bytes(folder: Path) -> int:
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk_space(folder: Path, needed: int, what: str) -> None:
    free = free_bytes(folder)
    if free < needed + MARGIN_BYTES:
        raise ExportError(
            f"not enough disk space for {what}: it needs about {needed / 2**20:,.0f} MB "
            f"but only {free / 2**20:,.0f} MB are free in {folder}. Free some space "
            f"(delete old exports or checkpoints) or export to another disk."
        )


# ---- listing and deleting -------------------------------------------------------------------
@dataclass
class ExportEntry:
    name: str
    kind: str
    folder: Path
    downloads: list[Path]  # what a browser downloads: the zip, or the GGUF file (+ Modelfile)
    size: int

    @property
    def size_mb(self) -> float:
        return self.size / 2**20


def kind_of(name: str) -> str:
    for kind in KINDS:
        if name == kind or name.startswith(kind + "-"):
            return kind
    return "merged"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def list_exports(run_dir: Path) -> list[Path]:
    """Complete exports of a run (folders and their zips), never temporary ones."""
    root = exports_dir(Path(run_dir))
    if not root.is_dir():
        return []
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(
        p
        for p in root.iterdir()
        if not p.name.startswith(".") and (p.name in folders or (p.suffix == ".zip" and p.stem in folders))
    )


def export_entries(run_dir: Path) -> list[ExportEntry]:
    root = exports_dir(Path(run_dir))
    entries = []
    for folder in list_exports(run_dir):
        if not folder.is_dir():
            continue
        archive = root / f"{folder.name}.zip"
        ggufs = sorted(folder.glob("*.gguf"))
        if ggufs:
            downloads = ggufs + [p for p in (folder / "Modelfile",) if p.is_file()]
        else:
            downloads = [archive] if archive.is_file() else []
        entries.append(ExportEntry(folder.name, kind_of(folder.name), folder, downloads, folder_size(folder)))
    return entries


def delete_export(run_dir: Path, name: str) -> None:
    root = exports_dir(Path(run_dir)).resolve()
    target = (root / name).resolve()
    if target.parent != root or name.startswith("."):
        raise ExportError(f"not an export of this run: {name}")
    if not target.exists():
        raise ExportError(f"no export named {name} in {root}")
    _remove(target)
    if target.suffix != ".zip":
        _remove(root / f"{name}.zip")
