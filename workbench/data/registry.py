"""The dataset registry: dataset_info.json, in LLaMA-Factory's format, read unchanged.

An entry names a file (`file_name`), its `formatting` (alpaca or sharegpt), whether it holds
preference pairs (`ranking`), which `columns` hold what, and for ShareGPT the role `tags`.
Workbench adds a few optional keys of its own: `format` (an explicit format for files
LLaMA-Factory has no name for: openai, prompt_completion, preference, kto, text,
classification), `test_file_name` (a held-out test file), `text_split`, `column_map`
(standard column = file column) and `description`.

Uploads live apart from the shipped registry: the file is copied to <dataset_dir>/uploads/
and registered in <dataset_dir>/uploads/dataset_info.json (git-ignored). Both registries are
merged when read; an upload never rewrites the shipped file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import atomic_write_text
from .readers import DataError

REGISTRY_FILE = "dataset_info.json"
UPLOADS = "uploads"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LLAMAFACTORY_KEYS = {"file_name", "formatting", "ranking", "columns", "tags", "split", "subset",
                     "folder", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "num_samples"}
WORKBENCH_KEYS = {"format", "test_file_name", "text_split", "column_map", "description"}


@dataclass
class DatasetEntry:
    name: str
    file_name: str | None = None
    formatting: str = "alpaca"
    ranking: bool = False
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    format: str | None = None
    test_file_name: str | None = None
    text_split: str = "auto"
    description: str = ""
    hub_url: str | None = None
    raw: dict = field(default_factory=dict)
    column_map: dict = field(default_factory=dict)
    folder: str = ""          # sub-folder of dataset_dir the file names are relative to

    @classmethod
    def from_json(cls, name: str, raw: dict) -> "DatasetEntry":
        if not isinstance(raw, dict):
            raise DataError(f"entry '{name}' must be an object", REGISTRY_FILE)
        return cls(name=name, file_name=raw.get("file_name"), formatting=raw.get("formatting", "alpaca"),
                   ranking=bool(raw.get("ranking", False)), columns=dict(raw.get("columns") or {}),
                   tags=dict(raw.get("tags") or {}), format=raw.get("format"),
                   test_file_name=raw.get("test_file_name"), text_split=raw.get("text_split", "auto"),
                   description=raw.get("description", ""),
                   hub_url=raw.get("hf_hub_url") or raw.get("ms_hub_url") or raw.get("om_hub_url"),
                   raw=raw, column_map=dict(raw.get("column_map") or {}))

    def path(self, dataset_dir: str | Path) -> Path | None:
        return Path(dataset_dir) / self.folder / self.file_name if self.file_name else None

    def test_path(self, dataset_dir: str | Path) -> Path | None:
        return Path(dataset_dir) / self.folder / self.test_file_name if self.test_file_name else None

    def is_local(self) -> bool:
        return self.file_name is not None


def _read_registry_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON at line {err.lineno}: {err.msg}", str(path)) from None
    if not isinstance(raw, dict):
        raise DataError("expected an object mapping dataset names to entries", str(path))
    return raw


def load_registry(dataset_dir: str | Path) -> dict[str, DatasetEntry]:
    """Shipped entries, then uploaded ones (an upload cannot shadow a shipped name)."""
    shipped = _read_registry_file(Path(dataset_dir) / REGISTRY_FILE)
    entries = {name: DatasetEntry.from_json(name, entry) for name, entry in shipped.items()}
    for name, raw in _read_registry_file(uploads_registry(dataset_dir)).items():
        if name not in entries:
            entry = DatasetEntry.from_json(name, raw)
            entry.folder = UPLOADS
            entries[name] = entry
    return entries


def uploads_registry(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / UPLOADS / REGISTRY_FILE


def uploaded_names(dataset_dir: str | Path) -> list[str]:
    return list(_read_registry_file(uploads_registry(dataset_dir)))


def local_dataset_names(dataset_dir: str | Path) -> list[str]:
    """Names whose files are present, the ones that can be picked in the UI."""
    names = []
    for name, entry in load_registry(dataset_dir).items():
        path = entry.path(dataset_dir)
        if path is not None and path.exists():
            names.append(name)
    return names


def get_entry(dataset_dir: str | Path, name: str) -> DatasetEntry:
    registry = load_registry(dataset_dir)
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise DataError(f"dataset '{name}' is not in {Path(dataset_dir) / REGISTRY_FILE} "
                        f"(known: {known})")
    entry = registry[name]
    if not entry.is_local():
        raise DataError(f"dataset '{name}' lives on a hub ({entry.hub_url}); this machine "
                        f"reads local files only: download it and register the file")
    return entry


def register_dataset(dataset_dir: str | Path, name: str, entry: dict) -> None:
    """Add or replace one entry, keeping every other entry exactly as it was."""
    path = Path(dataset_dir) / REGISTRY_FILE
    current = {}
    if path.is_file():
        current = json.loads(path.read_text(encoding="utf-8-sig"))
    current[name] = entry
    atomic_write_text(path, json.dumps(current, ensure_ascii=False, indent=2) + "\n")


def check_name(dataset_dir: str | Path, name: str, overwrite: bool = False) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise DataError(f"dataset name {name!r} must start with a letter or digit and hold only "
                        f"letters, digits, '_', '.' or '-' (at most 64)")
    shipped = _read_registry_file(Path(dataset_dir) / REGISTRY_FILE)
    if name in shipped:
        raise DataError(f"'{name}' is a shipped dataset; choose another name")
    if name in uploaded_names(dataset_dir) and not overwrite:
        raise DataError(f"a dataset named '{name}' is already registered; choose another name "
                        f"or replace it")


def register_upload(dataset_dir: str | Path, name: str, source: str | Path, entry: dict,
                    overwrite: bool = False) -> Path:
    """Copy a checked file into uploads/ and register it under `name`; returns the copy.

    The copy and the registry are each written to a temp file and then renamed, the copy
    first: a failure leaves the registry as it was (at worst an unregistered file)."""
    check_name(dataset_dir, name, overwrite)
    folder = Path(dataset_dir) / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}{Path(source).suffix.lower()}"
    if Path(source).resolve() != target.resolve():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    registry = _read_registry_file(uploads_registry(dataset_dir))
    registry[name] = {"file_name": target.name, **entry}
    atomic_write_text(uploads_registry(dataset_dir), json.dumps(registry, ensure_ascii=False, indent=2) + "\n")
    return target
