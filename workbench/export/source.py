"""What a run produced, and that result as one float model (adapter merged into its base)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..chat import not_generative_reason
from ..config import DEFAULT_MODEL
from ..methods import MERGEABLE_METHODS
from ..runs import FINAL_DIR, read_config
from .common import ExportError


@dataclass
class RunSource:
    run_dir: Path
    folder: Path  # final/ or checkpoint-N/
    config: dict  # the run's config.yaml

    @property
    def base_model(self) -> str:
        return self.config.get("model_name_or_path", DEFAULT_MODEL)

    @property
    def method(self) -> str:
        if self.is_adapter:
            import json

            peft_type = json.loads((self.folder / "adapter_config.json").read_text()).get("peft_type", "")
            return self.config.get("finetuning_type") or peft_type.lower()
        return self.config.get("finetuning_type", "full")

    @property
    def is_adapter(self) -> bool:
        return (self.folder / "adapter_config.json").is_file()

    @property
    def mergeable(self) -> bool:
        if not self.is_adapter:
            return True  # a whole model: nothing to merge
        import json

        peft_type = json.loads((self.folder / "adapter_config.json").read_text()).get("peft_type", "")
        return peft_type.lower() in MERGEABLE_METHODS


def run_source(run_dir: Path, checkpoint: str | None = None) -> RunSource:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"no such run folder: {run_dir}")
    if not checkpoint and not (run_dir / "config.yaml").is_file() and (run_dir / "adapter_config.json").is_file():
        return plain_adapter_source(run_dir)
    check_exportable(run_dir)
    folder = run_dir / (checkpoint or FINAL_DIR)
    if not folder.is_dir():
        raise ExportError(f"{folder} does not exist: the run has no saved result yet")
    return RunSource(run_dir, folder, read_config(run_dir))


def plain_adapter_source(folder: Path) -> RunSource:
    """Any PEFT adapter folder (not one of this project's runs): its base model is the one its
    adapter_config.json names."""
    import json

    adapter = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise ExportError(
            f"{folder}: the adapter does not name its base model (base_model_name_or_path in adapter_config.json)"
        )
    return RunSource(
        folder, folder, {"model_name_or_path": base, "finetuning_type": str(adapter.get("peft_type", "lora")).lower()}
    )


def check_exportable(run_dir: Path) -> None:
    """Every export kind makes a text generator (a causal LM, its adapter, GGUF for llama.cpp):
    a reward model or a classifier is refused, naming the run and why."""
    reason = not_generative_reason(run_dir)
    if reason:
        raise ExportError(
            f"{reason}; export writes text generators (merged, adapter, 4/8-bit, GGUF), not scoring models"
        )


def source_folder(run_dir: Path, checkpoint: str | None = None) -> Path:
    return run_source(run_dir, checkpoint).folder


def load_tokenizer(src: RunSource):
    from .. import models

    return models.load_tokenizer(
        str(src.folder) if (src.folder / "tokenizer_config.json").is_file() else src.base_model,
        bool(src.config.get("trust_remote_code", False)),
    )


def load_merged(src: RunSource):
    """The run's result as a plain fp32 model on the CPU.

    Adapters are merged into a float reload of the base, never into 4/8-bit weights, even when the
    run itself trained on a quantized base (QLoRA)."""
    from .. import models

    if not src.is_adapter:
        return models.load_causal_lm(
            str(src.folder),
            compute_type="fp32",
            device="cpu",
            trust_remote_code=bool(src.config.get("trust_remote_code", False)),
        )
    if not src.mergeable:
        raise ExportError(
            f"{src.method} adapters cannot be merged into the base; export the adapter instead (kind 'adapter')"
        )
    from peft import PeftModel

    base = models.load_causal_lm(
        src.base_model,
        compute_type="fp32",
        device="cpu",
        trust_remote_code=bool(src.config.get("trust_remote_code", False)),
    )
    try:
        model = PeftModel.from_pretrained(base, str(src.folder))
    except ValueError as err:
        raise ExportError(f"cannot load the adapter in {src.folder}: {err}") from None
    merged = model.merge_and_unload()
    merged.config.name_or_path = src.base_model
    return merged


def load_reference(src: RunSource):
    """The trained model as the workbench runs it, in full precision: the base in fp32 with the
    adapter applied (not merged), or a full run's weights in fp32. Exports are compared with it."""
    from .. import models

    if not src.is_adapter:
        return models.load_causal_lm(str(src.folder), compute_type="fp32", device="cpu").eval()
    from peft import PeftModel

    base = models.load_causal_lm(src.base_model, compute_type="fp32", device="cpu")
    try:
        return PeftModel.from_pretrained(base, str(src.folder)).eval()
    except ValueError as err:
        raise ExportError(f"cannot load the adapter in {src.folder}: {err}") from None


SHORT_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def base_dtype(src: RunSource) -> str:
    """The base model's own dtype (fp32/fp16/bf16): a known model's published one, else what its
    config.json says; fp32 when nothing says."""
    from .. import models

    known = models.KNOWN_MODELS.get(src.base_model)
    if known:
        return known.dtype
    for folder in [Path(src.base_model)] + ([] if src.is_adapter else [src.folder]):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        stored = str(config.get("dtype") or config.get("torch_dtype") or "")
        if stored in SHORT_DTYPES:
            return SHORT_DTYPES[stored]
    return "fp32"


STORED_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _weights_folder(src: RunSource) -> Path | None:
    from .. import models

    if not src.is_adapter:
        return src.folder
    try:
        return Path(models.resolve_model_path(src.base_model))
    except models.ModelError:
        return None


def _model_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def embedding_parameters(src: RunSource) -> int:
    """Parameters of the token embedding (the exports keep it wider under 4/5-bit GGUF types)."""
    folder = _weights_folder(src)
    config = _model_config(folder) if folder else {}
    return int(config.get("vocab_size") or 0) * int(config.get("hidden_size") or 0)


def estimated_parameters(src: RunSource) -> int | None:
    """Parameters of the model to export, from the weight files on disk (no loading), or None
    when the base is not a local folder (a hub id not downloaded yet)."""
    folder = _weights_folder(src)
    if folder is None or not folder.is_dir():
        return None
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    config = _model_config(folder)
    stored = STORED_BYTES.get(str(config.get("dtype") or config.get("torch_dtype") or "float32"), 4)
    return size // stored if size else None
