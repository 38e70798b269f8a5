"""The pre-run check: what can be known wrong about a run before its folder exists.

`check_run(cfg)` returns the problems, one readable line each (empty: the run may start). It
reads every dataset with the same row/field checks as the Data tab and training, checks that the
stage gets the rows it needs, that the model name resolves (without loading any weights), and
that the output folder is writable with room for a checkpoint. `workbench train` and Start in
the page call it first, so a mistake it can catch never leaves a failed run behind. No torch.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

from .config import RunConfig
from .runs import choose_run_dir

HUB_TIMEOUT_S = 3.0
MIN_CHECKPOINT_BYTES = 64 * 2**20  # an adapter checkpoint, its optimizer state and some slack
FULL_CHECKPOINT_FACTOR = 3  # weights + two Adam moments, as fp32
GGUF_TO_FP32 = 7  # a 4-bit GGUF file holds ~0.6 bytes per weight, fp32 holds 4
_hub_reachable: bool | None = None


def check_run(cfg: RunConfig, run_dir: str | Path | None = None) -> list[str]:
    """Every problem that would make this run fail before training, as one line each.

    run_dir: where the run will be written (default: where `workbench train` would put it)."""
    problems = dataset_problems(cfg)
    model = model_problem(cfg.model_name_or_path)
    if model:
        problems.append(model)
    problems += output_problems(cfg, run_dir)
    from .rewards import precheck  # grpo/rloo: the reward model run and the prompts

    problems += precheck(cfg)
    return problems + continuation_problems(cfg) if not problems else problems


def continuation_problems(cfg: RunConfig) -> list[str]:
    """What LLaMA-Factory's keys add: media datasets and eval_dataset that do not resolve, an
    adapter to continue that is missing or of another method."""
    from . import data, methods

    problems = []
    try:
        data.check_datasets(cfg)
    except data.DataError as err:
        problems.append(str(err))
    if cfg.adapter_name_or_path:
        try:
            methods.check_adapter(cfg)
        except methods.MethodError as err:
            problems.append(str(err))
    return problems


def notes(cfg: RunConfig) -> list[str]:
    """What is worth knowing but not wrong: a user's dataset replacing a shipped one."""
    from .data.registry import load_registry

    try:
        registry = load_registry(cfg.dataset_dir)
    except Exception:  # noqa: BLE001 - a broken registry is reported by check_run
        return []
    out = []
    for name in cfg.datasets():
        entry = registry.get(name)
        if entry is not None and entry.replaces is not None:
            out.append(f"dataset '{name}' comes from {entry.base}, which replaces the one in {entry.replaces}")
    return out


# ---- datasets ----------------------------------------------------------------------------
def dataset_problems(cfg: RunConfig) -> list[str]:
    """Each name registered and local, then every row read and checked as training reads it."""
    from .data import DataError, load_splits
    from .data.registry import get_entry

    problems = []
    for name in cfg.datasets():
        try:
            get_entry(cfg.dataset_dir, name)
        except DataError as err:
            problems.append(str(err))
    if problems:
        return problems
    try:
        load_splits(cfg)  # reads, detects the format, checks every row, the stage's rows, the split sizes
    except DataError as err:
        return [str(err)]
    except OSError as err:
        return [f"cannot read {err.filename or 'a dataset file'}: {err.strerror or err}"]
    return []


# ---- the model ---------------------------------------------------------------------------
def model_problem(name: str) -> str | None:
    """None when the name is a known model, a local model folder, or a hub id this machine can
    fetch (already in the Hugging Face cache, or the hub answers); else why not."""
    from .models import KNOWN_MODELS, ModelError, embedded_cache_dir, embedded_gguf_path

    name = (name or "").strip()
    known = KNOWN_MODELS.get(name)
    if known and known.gguf_package:
        if (embedded_cache_dir(known) / "model.safetensors").is_file():
            return None
        try:
            embedded_gguf_path(known)
        except ModelError as err:
            return str(err)
        return None
    path = Path(name).expanduser()
    if not known and path.exists():
        if not (path / "config.json").is_file():
            return f"model folder {path} has no config.json"
        return None
    hub_id = known.hub_id if known else name
    if not known and ("/" not in name or name.startswith(("/", ".", "~")) or name.count("/") > 1):
        return (
            f"unknown model '{name}': not a known name ({', '.join(KNOWN_MODELS)}), "
            f"not an existing folder, not a hub id (org/name)"
        )
    if in_hub_cache(hub_id) or hub_reachable():
        return None
    return (
        f"model '{name}' is not a local folder and not in the Hugging Face cache, and the hub "
        f"({hub_endpoint()}) cannot be reached from here: download it and give its folder, "
        f"or use {next(iter(KNOWN_MODELS))} (embedded, works offline)"
    )


def in_hub_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed id or cache is simply not cached
        return False


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable() -> bool:
    """Whether the hub answers a TCP connection within a few seconds (asked once a process)."""
    global _hub_reachable
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    if _hub_reachable is None:
        url = urlparse(hub_endpoint())
        answer = []

        def probe():  # in a thread: a name lookup ignores socket timeouts
            try:
                socket.create_connection((url.hostname, url.port or 443), timeout=HUB_TIMEOUT_S).close()
                answer.append(True)
            except OSError:
                pass

        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        worker.join(HUB_TIMEOUT_S + 1)
        _hub_reachable = bool(answer)
    return _hub_reachable


# ---- the output folder -------------------------------------------------------------------
def output_problems(cfg: RunConfig, run_dir: str | Path | None = None) -> list[str]:
    """The run folder can be created and written, and its disk has room for a checkpoint."""
    target = Path(run_dir or choose_run_dir(cfg)).expanduser().absolute()
    if target.exists() and not target.is_dir():
        return [f"output folder {target} is a file, not a folder"]
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"output folder {target} cannot be created: {existing} is a file, not a folder"]
    if not writable(existing):
        return [f"output folder {target} is not writable (cannot write in {existing})"]
    need, free = checkpoint_bytes(cfg), shutil.disk_usage(existing).free
    if free < need:
        return [
            f"not enough disk space for a checkpoint in {existing}: about {need / 2**20:.0f} MB "
            f"needed, {free / 2**20:.0f} MB free"
        ]
    return []


def writable(folder: Path) -> bool:
    """Tried, not asked: permission bits say nothing to root or on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".wb-write-check-"):
            return True
    except OSError:
        return False


def checkpoint_bytes(cfg: RunConfig) -> int:
    """A rough size of one checkpoint: an adapter is small; a full or frozen-layers run saves
    the weights and the optimizer state."""
    if cfg.finetuning_type not in ("full", "freeze"):
        return MIN_CHECKPOINT_BYTES
    return max(MIN_CHECKPOINT_BYTES, FULL_CHECKPOINT_FACTOR * model_weight_bytes(cfg.model_name_or_path))


def model_weight_bytes(name: str) -> int:
    """fp32 bytes of a local model's weights (0 when unknown without downloading)."""
    from .models import KNOWN_MODELS, ModelError, embedded_cache_dir, embedded_gguf_path

    known = KNOWN_MODELS.get(name.strip())
    folder = Path(name).expanduser()
    if known and known.gguf_package:
        folder = embedded_cache_dir(known)
        if not folder.is_dir():
            try:
                return GGUF_TO_FP32 * embedded_gguf_path(known).stat().st_size
            except ModelError:
                return 0
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.glob("*") if p.suffix in (".safetensors", ".bin"))
