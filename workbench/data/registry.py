"""The dataset registry: dataset_info.json, in LLaMA-Factory's format, read unchanged.

An entry names a file (`file_name`), its `formatting` (alpaca or sharegpt), whether it holds
preference pairs (`ranking`), which `columns` hold what, and for ShareGPT the role `tags`.
Workbench adds a few optional keys of its own: `format` (an explicit format for files
LLaMA-Factory has no name for: openai, prompt_completion, preference, kto, text,
classification), `test_file_name` (a held-out test file), `text_split`, `column_map`
(standard column = file column) and `description`.

Where datasets come from, later folders winning a shared name:
  1. the shipped folder inside the installed package (identity, date_format, ...), so they
     resolve from any working folder;
  2. ./data of the working folder, when it exists;
  3. the config's dataset_dir (relative to the working folder), when it exists.
Each user folder's uploads live apart: the file is copied to <dataset_dir>/uploads/ and
registered in <dataset_dir>/uploads/dataset_info.json (git-ignored); an upload never rewrites a
registry file and cannot take a shipped name.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..config import atomic_write_text
from ..confine import ConfinementError, confine, reserved_name
from .readers import DataError

REGISTRY_FILE = "dataset_info.json"
UPLOADS = "uploads"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
LOCAL_DATA = "data"  # a working folder's own dataset folder, read when it exists
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LLAMAFACTORY_KEYS = {
    "file_name",
    "formatting",
    "ranking",
    "columns",
    "tags",
    "split",
    "subset",
    "folder",
    "hf_hub_url",
    "ms_hub_url",
    "om_hub_url",
    "script_url",
    "num_samples",
}
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
    folder: str = ""  # sub-folder of dataset_dir the file names are relative to
    base: Path | None = None  # the folder its file names are relative to (set when read)
    replaces: Path | None = None  # the shipped registry file an entry of the same name came from
    refused: str = ""  # why its files may not be read (they lead out of the dataset folder)

    @classmethod
    def from_json(cls, name: str, raw: dict) -> DatasetEntry:
        if not isinstance(raw, dict):
            raise DataError(f"entry '{name}' must be an object", REGISTRY_FILE)
        return cls(
            name=name,
            file_name=raw.get("file_name"),
            formatting=raw.get("formatting", "alpaca"),
            ranking=bool(raw.get("ranking", False)),
            columns=dict(raw.get("columns") or {}),
            tags=dict(raw.get("tags") or {}),
            format=raw.get("format"),
            test_file_name=raw.get("test_file_name"),
            text_split=raw.get("text_split", "auto"),
            description=raw.get("description", ""),
            hub_url=raw.get("hf_hub_url") or raw.get("ms_hub_url") or raw.get("om_hub_url"),
            raw=raw,
            column_map=dict(raw.get("column_map") or {}),
        )

    def path(self, dataset_dir: str | Path) -> Path | None:
        return self._folder(dataset_dir) / self.file_name if self.file_name else None

    def test_path(self, dataset_dir: str | Path) -> Path | None:
        return self._folder(dataset_dir) / self.test_file_name if self.test_file_name else None

    def _folder(self, dataset_dir: str | Path) -> Path:
        return (self.base if self.base is not None else Path(dataset_dir)) / self.folder

    def source(self) -> str:
        """The folder the dataset comes from, as shown to a user."""
        return str((self.base or Path(".")) / self.folder).rstrip("/.") or "."

    def is_local(self) -> bool:
        return self.file_name is not None

    def check_confined(self, dataset_dir: str | Path) -> None:
        """Mark the entry refused when a file it names resolves outside its folder."""
        root = self._folder(dataset_dir)
        for key in ("file_name", "test_file_name"):
            value = getattr(self, key)
            if value is None:
                continue
            try:
                if not isinstance(value, str):
                    raise ConfinementError(key, "must be a file name")
                confine(value, key, [root], base=root)
            except ConfinementError as err:
                self.refused = f"dataset '{self.name}': {err}"
                return


def _read_registry_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON at line {err.lineno}: {err.msg}", str(path)) from None
    except RecursionError:
        raise DataError("nested too deeply to read", str(path)) from None
    if not isinstance(raw, dict):
        raise DataError("expected an object mapping dataset names to entries", str(path))
    return raw


def dataset_folders(dataset_dir: str | Path | None = None) -> list[Path]:
    """Every folder whose registry is read, absolute, shipped first (later ones win a name).

    Paths a server may read datasets from are exactly these folders, their uploads/
    sub-folders, and what their registries name."""
    folders = [SHIPPED_DIR]
    for candidate in (Path(LOCAL_DATA), Path(dataset_dir) if dataset_dir else None):
        if candidate is None:
            continue
        folder = candidate.expanduser().absolute()
        if folder.is_dir() and not any(_same(folder, known) for known in folders):
            folders.append(folder)
    return folders


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def load_registry(dataset_dir: str | Path | None = None) -> dict[str, DatasetEntry]:
    """The shipped entries, then each user folder's own and uploaded ones.

    A user's registry entry with a shipped name replaces the shipped one (entry.replaces says
    so); an upload cannot shadow a name read before it."""
    entries: dict[str, DatasetEntry] = {}
    for folder in dataset_folders(dataset_dir):
        for name, raw in _read_registry_file(folder / REGISTRY_FILE).items():
            entry = DatasetEntry.from_json(name, raw)
            entry.base = folder
            previous = entries.get(name)
            if previous is not None:
                entry.replaces = previous.replaces or previous.base / REGISTRY_FILE
            entries[name] = entry
        for name, raw in _read_registry_file(folder / UPLOADS / REGISTRY_FILE).items():
            if name not in entries:
                entry = DatasetEntry.from_json(name, raw)
                entry.base, entry.folder = folder, UPLOADS
                entries[name] = entry
    for entry in entries.values():  # a hand-edited registry is held to the same rule
        entry.check_confined(dataset_dir)
    return entries


def uploads_registry(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / UPLOADS / REGISTRY_FILE


def uploaded_names(dataset_dir: str | Path) -> list[str]:
    return list(_read_registry_file(uploads_registry(dataset_dir)))


def local_dataset_names(dataset_dir: str | Path | None = None) -> list[str]:
    """Names whose files are present, the ones that can be picked in the UI."""
    names = []
    for name, entry in load_registry(dataset_dir).items():
        path = entry.path(dataset_dir)
        if path is not None and not entry.refused and path.exists():
            names.append(name)
    return names


def unknown_datasets(dataset_dir: str | Path, value: str) -> str | None:
    """A message when a comma-separated list names a dataset the folder does not offer (one
    that is missing, lives on a hub, or leads out of the folder); None when all are offered."""
    known = set(local_dataset_names(dataset_dir))
    unknown = [n.strip() for n in str(value).split(",") if n.strip() and n.strip() not in known]
    if not unknown:
        return None
    shown = ", ".join(repr(n[:64]) for n in unknown[:3])
    close = difflib.get_close_matches(unknown[0], sorted(known), n=1)  # names the page lists anyway
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"'dataset' names no dataset of this server's dataset folder ({shown}){hint}"


def get_entry(dataset_dir: str | Path | None, name: str) -> DatasetEntry:
    registry = load_registry(dataset_dir)
    if name not in registry:
        raise DataError(unknown_dataset_message(name, registry, dataset_dir))
    entry = registry[name]
    if entry.refused:
        raise DataError(entry.refused)
    if not entry.is_local():
        raise DataError(
            f"dataset '{name}' lives on a hub ({entry.hub_url}); this machine "
            f"reads local files only: download it and register the file"
        )
    return entry


def unknown_dataset_message(name: str, registry: dict, dataset_dir) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(registry), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    folders = ", ".join(str(f) for f in dataset_folders(dataset_dir))
    known = ", ".join(sorted(registry)) or "none"
    return f"dataset '{name}' is not registered{hint}; known: {known} (read from {folders})"


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
        raise DataError(
            f"dataset name {name!r} must start with a letter or digit and hold only "
            f"letters, digits, '_', '.' or '-' (at most 64)"
        )
    if reserved_name(name):
        raise DataError(f"dataset name {name!r} is reserved (it is the registry's own file); choose another name")
    shipped = _read_registry_file(SHIPPED_DIR / REGISTRY_FILE)
    shipped.update(_read_registry_file(Path(dataset_dir) / REGISTRY_FILE))
    if name in shipped:
        raise DataError(f"'{name}' is a shipped dataset; choose another name")
    if name in uploaded_names(dataset_dir) and not overwrite:
        raise DataError(f"a dataset named '{name}' is already registered; choose another name or replace it")


def register_upload(
    dataset_dir: str | Path, name: str, source: str | Path, entry: dict, overwrite: bool = False
) -> Path:
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
