"""A tokenized-dataset cache: a second Start with the same inputs skips tokenization.

The key covers everything tokenization depends on: the rows themselves (so the dataset files,
placeholders, max_samples and the split are all in it), the tokenizer's vocabulary and special
tokens, the chat template, the settings that shape examples (stage, cutoff_len, train_on_prompt,
packing, template, and any setting not known to be about training only) and the source of the
code that tokenizes. Entries live under <cache>/tokenized/<key>.json (plain JSON: reading a
cache file never runs code), written atomically; a damaged entry is a miss and is rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

# Settings that cannot change what tokenize_rows makes of the same rows. Every other field of
# RunConfig is in the key: a field added later that does matter can at worst cost a miss.
IGNORED_GROUPS = ("train", "schedule", "system", "lora")
IGNORED_FIELDS = (
    "dataset",
    "dataset_dir",
    "max_samples",
    "val_size",
    "test_size",  # in the rows
    "model_name_or_path",  # the tokenizer digest stands for it
    "quantization_bit",
    "quantization_type",
    "double_quantization",
    "compute_type",
    "finetuning_type",
    "freeze_trainable_layers",
    "freeze_trainable_modules",
    "layerwise_lr_decay",
    "output_dir",
    "resume_from_checkpoint",
)
# bump when the stored layout changes
FORMAT = 1


def _code_digest() -> str:
    """The source of the modules that turn rows into examples: editing them invalidates."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("__init__.py", "templates.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode("utf-8"))
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode("utf-8"))
    specials = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    digest.update(
        json.dumps(
            [specials, type(tokenizer).__name__, getattr(tokenizer, "chat_template", None)], sort_keys=True, default=str
        ).encode("utf-8")
    )
    return digest.hexdigest()


def key_settings(cfg) -> dict:
    fields = dataclasses.fields(cfg) if dataclasses.is_dataclass(cfg) else ()
    return {
        f.name: getattr(cfg, f.name)
        for f in fields
        if f.metadata.get("group") not in IGNORED_GROUPS and f.name not in IGNORED_FIELDS
    }


def cache_key(tokenizer, rows: list[dict], cfg, cutoff_len: int | None = None) -> str:
    settings = key_settings(cfg)
    if cutoff_len:
        settings["cutoff_len"] = cutoff_len
    digest = hashlib.sha256()
    digest.update(json.dumps([FORMAT, settings], sort_keys=True, default=str).encode("utf-8"))
    digest.update(tokenizer_digest(tokenizer).encode())
    digest.update(_code_digest().encode())
    digest.update(json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
    return digest.hexdigest()[:32]


def cache_dir() -> Path:
    from ..models import cache_root

    return cache_root() / "tokenized"


def tokenize_rows_cached(tokenizer, rows: list[dict], cfg, cutoff_len: int | None = None):
    """`tokenize_rows`, remembered on disk by its inputs. Returns (examples, stats, hit)."""
    from . import TokenStats, tokenize_rows

    if not rows:
        examples, stats = tokenize_rows(tokenizer, rows, cfg, cutoff_len)
        return examples, stats, False
    path = cache_dir() / f"{cache_key(tokenizer, rows, cfg, cutoff_len)}.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return saved["examples"], TokenStats(**saved["stats"]), True
        except Exception:  # noqa: BLE001 - a damaged entry is only a miss
            pass
    examples, stats = tokenize_rows(tokenizer, rows, cfg, cutoff_len)
    _write_atomic(path, {"examples": examples, "stats": dataclasses.asdict(stats)})
    return examples, stats, False


def _write_atomic(path: Path, value) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache only costs the next run its time
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
