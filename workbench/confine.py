"""The workspace a server was started with, and the one rule every path from outside obeys.

A path that comes from a browser request, a YAML, a registry entry or a run id resolves, after
symlinks, inside one of the workspace folders (the runs folder, the dataset folders served, the
uploads folder); anything else is refused with a message that names the key and says why, and
that reads the same whether or not the path exists, so nothing is learnt about the disk outside.

The command line is run by the machine's owner: it keeps accepting any model folder, but a
dataset registry is held to the same rule wherever it is read."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# a hub id as transformers reads it ("org/name"); anything else path-like is a local folder
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED_NAMES = {"dataset_info"}  # the uploads registry's own name


class ConfinementError(ValueError):
    """A path from outside that leaves the workspace; the message names the key, never the disk."""

    def __init__(self, key: str, why: str):
        self.key = key
        super().__init__(f"'{key}' {why}")


def is_inside(path: Path, root: Path) -> bool:
    """True when the resolved path is root itself or lies below it (both after symlinks)."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or base in real.parents


def confine(value, key: str, roots, base: Path | None = None) -> Path:
    """The resolved path `value` means (relative to `base`), if it lies inside one of `roots`."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip() or "\x00" in str(value):
        raise ConfinementError(key, "must name a path inside the workspace")
    path = Path(os.path.expanduser(str(value))) if str(value).startswith("~") else Path(value)
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    real = Path(os.path.realpath(path))
    if any(is_inside(real, root) for root in roots):
        return real
    raise ConfinementError(
        key, "must stay inside the workspace (the runs, dataset and uploads folders the server was started with)"
    )


def child(root: Path, name, key: str) -> Path:
    """`root/name` for a single name (a run id, a checkpoint, an export): no separators, no
    '..', no hidden names, and no symlink that leads out of root."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or name.startswith(".")
        or any(ch in name for ch in "/\\\x00")
    ):
        raise ConfinementError(key, "must be the name of an entry in its folder")
    path = Path(root) / name
    if not is_inside(path, root) or Path(os.path.realpath(path)).parent != Path(os.path.realpath(root)):
        raise ConfinementError(key, "must be the name of an entry in its folder")
    return path


def run_folder(saves: Path, spec, key: str = "run") -> Path:
    """The folder of 'RUN' or 'RUN/checkpoint-N' inside the runs folder."""
    if not isinstance(spec, str):
        raise ConfinementError(key, "must be a run id")
    run_id, sep, checkpoint = spec.partition("/")
    folder = child(saves, run_id, key)
    return child(folder, checkpoint, key) if sep else folder


def reserved_name(name: str) -> bool:
    """Dataset names an upload may not take: they would replace the uploads registry."""
    return Path(str(name)).stem.lower() in RESERVED_NAMES or str(name).lower() in RESERVED_NAMES


@dataclass(frozen=True)
class Workspace:
    """What a server serves: its runs folder, its dataset folders and its uploads folder."""

    saves: Path
    dataset_dirs: tuple[Path, ...]
    uploads: Path | None = None
    allow_local_models: bool = False
    extra_model_roots: tuple[Path, ...] = field(default_factory=tuple)
    read_roots: tuple[Path, ...] = field(default_factory=tuple)  # other folders datasets are read from

    def roots(self) -> list[Path]:
        return [self.saves, *self.dataset_dirs, *self.read_roots] + ([self.uploads] if self.uploads else [])

    def dataset_dir(self, value, key: str = "dataset_dir") -> str:
        """A served dataset folder, given as one of the served ones (or the same folder)."""
        if isinstance(value, (str, os.PathLike)) and str(value).strip():
            wanted = Path(value) if Path(value).is_absolute() else Path.cwd() / value
            for folder in self.dataset_dirs:
                if os.path.realpath(wanted) == os.path.realpath(folder):
                    return str(folder)
        raise ConfinementError(key, "must be one of the dataset folders this server serves")

    def upload_file(self, value, key: str = "file") -> Path:
        """A file handed in by the browser: Gradio's uploads folder or the workspace."""
        return confine(value, key, self.roots())

    def model(self, value, key: str = "model_name_or_path") -> str:
        """A known model, a hub id, or a local folder inside the workspace or the model cache
        (any local folder when the server was started with --allow-local-models)."""
        from .models import KNOWN_MODELS, cache_root

        text = str(value or "").strip()
        if text in KNOWN_MODELS or self.allow_local_models:
            return text
        local = text.startswith(("/", "~", ".")) or "\\" in text or ".." in text.split("/")
        if not local and HUB_ID.match(text) and not Path(text).exists():
            return text  # a hub id (no local folder of that name next to the server)
        if not local and not text.count("/") and not Path(text).exists():
            return text  # a bare name; loading it gives the model loader's own message
        try:
            confine(text, key, [*self.roots(), cache_root(), *self.extra_model_roots])
        except ConfinementError:
            raise ConfinementError(
                key,
                "must be a known model, a hub id, or a folder inside the "
                "workspace or the model cache (local folders elsewhere need "
                "the server started with --allow-local-models)",
            ) from None
        return text

    def check_config(self, cfg) -> list[str]:
        """Problems of a config built from a browser form or an uploaded YAML, one per key."""
        problems = []
        checks = [
            ("dataset_dir", lambda v: self.dataset_dir(v)),
            ("model_name_or_path", lambda v: self.model(v)),
            ("resume_from_checkpoint", lambda v: confine(v, "resume_from_checkpoint", [self.saves], base=self.saves)),
            (
                "adapter_name_or_path",
                lambda v: [
                    confine(p.strip(), "adapter_name_or_path", [self.saves], base=self.saves) for p in str(v).split(",")
                ],
            ),
            ("output_dir", lambda v: confine(v, "output_dir", [self.saves], base=self.saves)),
        ]
        for key, check in checks:
            value = getattr(cfg, key, None)
            if value in (None, ""):
                continue
            try:
                check(value)
            except ConfinementError as err:
                problems.append(str(err))
        return problems
