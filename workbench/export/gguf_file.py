"""Write a llama-family model to one GGUF file (f16 or q8_0) with the `gguf` package, plus an
Ollama Modelfile.

The tensor names come from gguf's own name map; the q/k projections are reordered the way
llama.cpp expects (it rotates pairs of neighbouring dimensions; transformers rotates halves),
which transformers undoes when it loads the file. The tokenizer is stored as llama.cpp's
byte-level BPE ("gpt2") vocabulary: tokens, their types and the merges.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .common import ExportError, Progress, no_progress

LLAMA_FAMILY = ("llama",)  # model_type values whose layout is llama's (SmolLM2 is a llama)
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
Q8_BLOCK = 32


def check_supported(model_config) -> None:
    if model_config.model_type not in LLAMA_FAMILY:
        raise ExportError(f"GGUF export supports llama-family models; this model is "
                          f"'{model_config.model_type}'. Export it merged and convert it with llama.cpp.")
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


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    """llama.cpp's name for how text is split before BPE (it picks its regex by this name)."""
    text = json.dumps(tokenizer_json.get("pre_tokenizer") or {})
    if '"individual_digits": true' in text:
        return "smollm"  # digits one by one, then GPT-2 byte-level splitting
    if "\\\\p{N}{1,3}" in text or "p{N}{1,3}" in text:
        return "llama-bpe"
    if "\\\\p{N}" in text and "Split" in text:
        return "qwen2"
    return "gpt2"


def tokenizer_fields(tokenizer, vocab_size: int) -> dict:
    """Tokens (by id), their types and merges, from the fast tokenizer's own JSON."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError("GGUF export handles byte-level BPE tokenizers (GPT-2/Llama-3/SmolLM style); "
                          "this tokenizer is not one")
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
    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre_tokenizer_name(data)}


def _tensor_data(name: str, tensor, qtype: str):
    """The array to store and its GGML type: norms stay f32; matrices become f16 or q8_0."""
    import gguf

    array = tensor.detach().to("cpu").float().numpy()
    if array.ndim == 1:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32
    if qtype == "q8_0" and array.shape[-1] % Q8_BLOCK == 0:
        kind = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(array, kind), kind
    return array.astype(np.float16), gguf.GGMLQuantizationType.F16


def write_gguf(model, tokenizer, path: Path, qtype: str = "f16", name: str = "model",
               progress: Progress = no_progress) -> Path:
    """Write `model` (a float llama-family causal LM) and its tokenizer into one GGUF file."""
    import gguf

    if qtype not in ("f16", "q8_0"):
        raise ExportError(f"GGUF type must be f16 or q8_0, got '{qtype}'")
    config = model.config
    check_supported(config)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tok = tokenizer_fields(tokenizer, config.vocab_size)

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
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    for key, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                          ("unk", tokenizer.unk_token_id), ("pad", tokenizer.pad_token_id)):
        if token_id is not None:
            getattr(writer, f"add_{key}_token_id")(token_id)
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    writer.add_add_space_prefix(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    state = model.state_dict()
    tied = getattr(config, "tie_word_embeddings", False)
    items = [(k, v) for k, v in state.items() if not (tied and k == "lm_head.weight")
             and not k.endswith("rotary_emb.inv_freq")]
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
        progress(0.6 + 0.3 * (index + 1) / len(items), f"GGUF {qtype}: {hf_name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def modelfile(gguf_name: str, tokenizer, system: str = "") -> str:
    """An Ollama Modelfile: the weights, the chat template in Ollama's Go template syntax, and stops."""
    lines = [f"FROM ./{gguf_name}", ""]
    template = ollama_template(tokenizer)
    if template:
        lines += [f'TEMPLATE """{template}"""', ""]
    for stop in stop_tokens(tokenizer):
        lines.append(f'PARAMETER stop "{stop}"')
    if system:
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"


def stop_tokens(tokenizer) -> list[str]:
    stops = []
    for token in (tokenizer.eos_token, "<|im_end|>", "<|eot_id|>"):
        if token and token not in stops and token in tokenizer.get_vocab():
            stops.append(token)
    return stops


def ollama_template(tokenizer) -> str:
    """The model's chat format rendered for Ollama. Jinja is not Go's template language, so the
    format is recognised (ChatML, Llama 3) rather than translated."""
    template = tokenizer.chat_template or ""
    if "<|im_start|>" in template:
        return ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                "{{ end }}<|im_start|>assistant\n")
    if "<|start_header_id|>" in template:
        return ("<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
                "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")
    return ""
