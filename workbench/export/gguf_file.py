"""Write a llama-family model to one GGUF file (f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1) with the
`gguf` package, plus an Ollama Modelfile.

The tensor names come from gguf's own name map; the q/k projections are reordered the way
llama.cpp expects (it rotates pairs of neighbouring dimensions; transformers rotates halves),
which transformers undoes when it loads the file. The tokenizer is stored as llama.cpp's
byte-level BPE ("gpt2") vocabulary: tokens, their types and the merges, with the pre-tokenizer
name llama.cpp looks up (it refuses names it does not know), the special tokens and the chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import GGUF_TYPES as GGUF_FILE_TYPES
from .common import ExportError, Progress, no_progress

LLAMA_FAMILY = ("llama",)  # model_type values whose layout is llama's (SmolLM2 is a llama)
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
BLOCK = 32  # every quantized type here packs rows in blocks of 32 values
# chat formats' end-of-turn tokens: llama.cpp stops on them as on eos
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def check_supported(model_config) -> None:
    if model_config.model_type not in LLAMA_FAMILY:
        raise ExportError(
            f"GGUF export supports llama-family models; this model is "
            f"'{model_config.model_type}'. Export it merged and convert it with llama.cpp."
        )
    rope = getattr(model_config, "rope_parameters", None) or getattr(model_config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") not in ("default", None):
        raise ExportError(f"GGUF export does not handle rope scaling '{rope.get('rope_type')}' yet")


def reorder_for_llama_cpp(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Within each head, interleave the two rotary halves: rows [a0..a(d/2), b0..] → [a0, b0, a1, b1...]."""
    rows = weight.shape[0]
    half = rows // n_head // 2
    return weight.reshape(n_head, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


# llama.cpp picks its pre-tokenizer (how text is split before BPE) by name. Its converter names a
# tokenizer by encoding this fixed text and hashing the token ids; the same text and hashes here
# give the same names (hashes taken from llama.cpp's convert_hf_to_gguf.py).
PRE_TOKENIZER_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````"
    "\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, "
    "'D you like some tea? We'Ve a'lL"
)
PRE_TOKENIZER_HASHES = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM/SmolLM2
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3.x
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",  # Llama 3 variants
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # GPT-2
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen1.5-2.5
    "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
    "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
    "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral Nemo
    "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae": "exaone",
}


def tokenizer_hash(tokenizer) -> str:
    import hashlib

    ids = tokenizer.encode(PRE_TOKENIZER_TEXT)
    return hashlib.sha256(str(ids).encode()).hexdigest()


def base_gguf_pre(base_model: str | None) -> str | None:
    """`tokenizer.ggml.pre` of the GGUF file the base model came from (the embedded default
    model ships as one), or None when it did not come from a GGUF file."""
    if not base_model:
        return None
    from .. import models

    known = models.KNOWN_MODELS.get(base_model)
    if not known or not known.gguf_package:
        return None
    try:
        path = models.embedded_gguf_path(known)
    except models.ModelError:
        return None
    return read_gguf_string(path, "tokenizer.ggml.pre")


def read_gguf_string(path: Path, key: str) -> str | None:
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get(key)
    return str(field.contents()) if field is not None else None


def pre_tokenizer_name(tokenizer, base_model: str | None = None) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer: the base GGUF's own when the model came
    from one, else recognised by hash the way llama.cpp's converter does. An unknown tokenizer is
    refused: llama.cpp would refuse to load the file ("unknown pre-tokenizer type")."""
    from_base = base_gguf_pre(base_model)
    if from_base:
        return from_base
    digest = tokenizer_hash(tokenizer)
    name = PRE_TOKENIZER_HASHES.get(digest)
    if name is None:
        raise ExportError(
            f"GGUF export: llama.cpp does not know this tokenizer's pre-tokenizer "
            f"(hash {digest[:12]}..., not one of {', '.join(sorted(set(PRE_TOKENIZER_HASHES.values())))}); "
            f"a file written anyway would not load. Export it merged and convert it with "
            f"llama.cpp's convert_hf_to_gguf.py"
        )
    return name


def tokenizer_fields(tokenizer, vocab_size: int, base_model: str | None = None) -> dict:
    """Tokens (by id), their types and merges, from the fast tokenizer's own JSON."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError(
            "GGUF export handles byte-level BPE tokenizers (GPT-2/Llama-3/SmolLM style); this tokenizer is not one"
        )
    tokens = [None] * vocab_size
    types = [TOKEN_NORMAL] * vocab_size
    for token, index in model["vocab"].items():
        if index < vocab_size:
            tokens[index] = token
    for added in data.get("added_tokens", []):
        if added["id"] < vocab_size:
            tokens[added["id"]] = added["content"]
            types[added["id"]] = TOKEN_CONTROL if added.get("special") else TOKEN_USER_DEFINED
    for index, token in enumerate(tokens):
        if token is None:  # rows of the embedding that no token uses
            tokens[index], types[index] = f"[PAD{index}]", TOKEN_UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre_tokenizer_name(tokenizer, base_model)}


def _ggml_type(qtype: str):
    import gguf

    return getattr(gguf.GGMLQuantizationType, qtype.upper())


def _tensor_data(name: str, tensor, qtype: str):
    """The array to store and its GGML type: norms stay f32; matrices take the chosen type. As
    llama.cpp's own quantizer does, the token embedding (also the output layer when tied) keeps
    8 bits under a 4/5-bit type: those bits cost most quality there."""
    import gguf

    array = tensor.detach().to("cpu").float().numpy()
    if array.ndim == 1:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if qtype == "f16" or array.shape[-1] % BLOCK:
        return array.astype(np.float16), gguf.GGMLQuantizationType.F16
    if qtype.startswith(("q4", "q5")) and name in ("model.embed_tokens.weight", "lm_head.weight"):
        qtype = "q8_0"
    kind = _ggml_type(qtype)
    return gguf.quants.quantize(array, kind), kind


def file_type(qtype: str):
    import gguf

    return getattr(gguf.LlamaFileType, f"MOSTLY_{qtype.upper()}")


def end_of_turn_token(tokenizer) -> str | None:
    """The chat format's end-of-turn token (ChatML's <|im_end|>, Llama 3's <|eot_id|>...)."""
    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN:
        if token in template and token in vocab:
            return token
    return None


def special_token_ids(tokenizer) -> dict[str, int]:
    """bos/eos/eot/unk/pad ids as llama.cpp reads them. A chat model's eos is its end-of-turn
    token (SmolLM2: <|im_end|>), so a reply ends where the chat template ends a turn."""
    ids = {key: getattr(tokenizer, f"{key}_token_id") for key in ("bos", "eos", "unk", "pad")}
    eot = end_of_turn_token(tokenizer)
    if eot:
        ids["eot"] = tokenizer.convert_tokens_to_ids(eot)
        if ids["eos"] is None:
            ids["eos"] = ids["eot"]
    if ids["pad"] is None:
        ids["pad"] = ids["eos"]
    return {key: int(value) for key, value in ids.items() if value is not None}


def write_gguf(
    model,
    tokenizer,
    path: Path,
    qtype: str = "f16",
    name: str = "model",
    progress: Progress = no_progress,
    base_model: str | None = None,
) -> Path:
    """Write `model` (a float llama-family causal LM) and its tokenizer into one GGUF file.

    `base_model` (the run's model name) lets the tokenizer's llama.cpp name come from the GGUF
    file the base was shipped as."""
    import gguf

    if qtype not in GGUF_FILE_TYPES:
        raise ExportError(
            f"GGUF type must be one of {', '.join(GGUF_FILE_TYPES)}, got '{qtype}' "
            f"(k-quants such as Q4_K_M need llama.cpp's llama-quantize on an f16 export)"
        )
    config = model.config
    check_supported(config)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tok = tokenizer_fields(tokenizer, config.vocab_size, base_model)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type(qtype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    for key, token_id in special_token_ids(tokenizer).items():
        getattr(writer, f"add_{key}_token_id")(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    writer.add_add_space_prefix(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    state = model.state_dict()
    tied = getattr(config, "tie_word_embeddings", False)
    items = [
        (k, v)
        for k, v in state.items()
        if not (tied and k == "lm_head.weight") and not k.endswith("rotary_emb.inv_freq")
    ]
    for index, (hf_name, tensor) in enumerate(items):
        base, _, suffix = hf_name.rpartition(".")
        mapped = names.get_name(base)
        if mapped is None:
            raise ExportError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        if base.endswith("self_attn.q_proj"):
            tensor = reorder_for_llama_cpp(tensor.detach().float().numpy(), n_head)
        elif base.endswith("self_attn.k_proj"):
            tensor = reorder_for_llama_cpp(tensor.detach().float().numpy(), n_kv)
        if isinstance(tensor, np.ndarray):
            import torch

            tensor = torch.from_numpy(np.ascontiguousarray(tensor))
        data, kind = _tensor_data(hf_name, tensor, qtype)
        writer.add_tensor(f"{mapped}.{suffix}", data, raw_dtype=kind)
        progress(0.3 + 0.3 * (index + 1) / len(items), f"GGUF {qtype}: {hf_name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def modelfile(gguf_name: str, tokenizer, system: str | None = None) -> str:
    """An Ollama Modelfile: the weights, the GGUF's chat template in Ollama's Go template syntax,
    its default system message (Ollama adds it as the template does when none is given), and the
    GGUF's end tokens as stops."""
    lines = [f"FROM ./{gguf_name}", ""]
    system = default_system(tokenizer) if system is None else system
    template = ollama_template(tokenizer)
    if template:
        lines += [f'TEMPLATE """{template}"""', ""]
    for stop in stop_tokens(tokenizer):
        lines.append(f'PARAMETER stop "{stop}"')
    if system:
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"


def default_system(tokenizer) -> str:
    """The system message a ChatML template inserts when a conversation has none (SmolLM2's)."""
    import re

    found = re.search(r"'system'.*?<\|im_start\|>system\n(.*?)<\|im_end\|>", tokenizer.chat_template or "", re.DOTALL)
    return found.group(1) if found else ""


def stop_tokens(tokenizer) -> list[str]:
    """The GGUF file's own end tokens (eos, end of turn) as text: Ollama stops on the same ones."""
    ids = special_token_ids(tokenizer)
    stops = []
    for key in ("eot", "eos"):
        token = tokenizer.convert_ids_to_tokens(ids[key]) if key in ids else None
        if token and token not in stops:
            stops.append(token)
    return stops


def ollama_template(tokenizer) -> str:
    """The model's chat format rendered for Ollama. Jinja is not Go's template language, so the
    format is recognised (ChatML, Llama 3) rather than translated."""
    template = tokenizer.chat_template or ""
    if "<|im_start|>" in template:
        return (
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
        )
    if "<|start_header_id|>" in template:
        return (
            "<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
            "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        )
    return ""
