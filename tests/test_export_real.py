"""The default model (SmolLM2-135M-Instruct, a llama) after a short LoRA run, exported to GGUF at
f16 and q8_0: a fresh process loads each file with transformers' gguf_file= and generates greedily
what the merged model generates (exactly for f16, closely for q8_0)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from workbench import export, models
from workbench.data.registry import SHIPPED_DIR

from conftest import ROOT, as_f16_stores_it

pytestmark = pytest.mark.slow
NEW_TOKENS = 12

PROBE = (
    r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, prompt = sys.argv[1], sys.argv[2]
out = {}
for name in sys.argv[3:]:
    tokenizer = AutoTokenizer.from_pretrained(folder + "/" + name.split("/")[0], gguf_file=name.split("/")[1])
    model = AutoModelForCausalLM.from_pretrained(folder + "/" + name.split("/")[0], gguf_file=name.split("/")[1],
                                                 dtype=torch.float32)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        new = model.generate(ids, max_new_tokens=%d, do_sample=False)[0, ids.shape[1]:]
    out[name] = {"ids": ids[0].tolist(), "new": new.tolist()}
print(json.dumps(out))
"""
    % NEW_TOKENS
)


def test_default_model_gguf_round_trip(tmp_path, default_model_dir):
    from peft import PeftModel

    from workbench.config import from_dict
    from workbench.train import run

    run_dir = tmp_path / "saves" / "real-lora"
    cfg = from_dict(
        {
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "max_samples": 8,
            "per_device_train_batch_size": 8,
            "max_steps": 2,
            "learning_rate": 5e-3,
            "cutoff_len": 96,
            "logging_steps": 1,
            "save_steps": 100,
        }
    )
    run(cfg, run_dir, echo=False)
    f16 = export.export_gguf(run_dir, "f16")
    q8 = export.export_gguf(run_dir, "q8_0")
    assert "<|im_start|>" in (q8.folder / "Modelfile").read_text()

    tokenizer = models.load_tokenizer(str(run_dir / "final"))
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who are you?"}], tokenize=False, add_generation_prompt=True
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(run_dir / "exports"),
            prompt,
            f"gguf-f16/{f16.archive.name}",
            f"gguf-q8_0/{q8.archive.name}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    base = models.load_causal_lm(str(default_model_dir), compute_type="fp32", device="cpu")
    merged = PeftModel.from_pretrained(base, str(run_dir / "final")).merge_and_unload()
    ids = torch.tensor([tokenizer(prompt).input_ids])
    assert seen[f"gguf-f16/{f16.archive.name}"]["ids"] == ids[0].tolist()  # the GGUF tokenizer agrees

    def greedy(model):
        with torch.no_grad():
            return model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)[0, ids.shape[1] :].tolist()

    exact = greedy(merged)
    assert seen[f"gguf-f16/{f16.archive.name}"]["new"] == greedy(as_f16_stores_it(merged))
    q8_new = seen[f"gguf-q8_0/{q8.archive.name}"]["new"]
    # q8_0 rounds every weight: the first tokens agree, a late one may differ
    assert q8_new[:4] == exact[:4] and sum(a == b for a, b in zip(q8_new, exact)) >= NEW_TOKENS // 2, (q8_new, exact)


# Known open defect, measured 2026-12-04: on the LoRA run llama.cpp's greedy answer starts with the
# trained model's first token on 3 of 5 held-out prompts only (largest top-5 log-probability
# difference 17), so the export does not yet answer as the trained model. Expected to fail until
# found; strict=False so the day it passes is visible in the report as XPASS.
@pytest.mark.xfail(reason="GGUF f16 answers differ from the trained model on 2 of 5 held-out prompts", strict=False)
@pytest.mark.parametrize("method", ["lora", "dora", "full", "qlora"])
def test_default_model_gguf_answers_in_llama_cpp_as_the_trained_model(tmp_path, default_model_dir, method):
    """A short run of the default model by each method, exported to GGUF f16: llama.cpp itself
    loads the file, and its greedy answers to the run's held-out prompts start with the same
    tokens as the trained model's (fp32, adapter applied) on at least 4 of 5 prompts."""
    pytest.importorskip("xllamacpp")
    from workbench.config import from_dict
    from workbench.export import parity
    from workbench.train import run

    keys = {
        "lora": {},
        "dora": {"use_dora": True},
        "full": {"finetuning_type": "full", "learning_rate": 1e-5},
        "qlora": {"quantization_bit": 4},
    }[method]
    run_dir = tmp_path / "saves" / f"real-{method}"
    cfg = from_dict(
        {
            "dataset": "identity",
            "dataset_dir": str(ROOT / "data"),
            "val_size": 5,
            "per_device_train_batch_size": 2,
            "max_steps": 2,
            "learning_rate": 1e-3,
            "cutoff_len": 96,
            "logging_steps": 1,
            "save_steps": 100,
            **keys,
        }
    )
    run(cfg, run_dir, echo=False)
    result = export.export_gguf(run_dir, "f16")
    report = result.parity
    assert report["prompts_from"] == "held-out rows (validation)" and report["prompts"] == 5
    assert report["runtime"].startswith("llama.cpp"), report["summary"]
    assert report["first_tokens_same"] >= 4 and report["status"] == "ok", report["summary"]
    # and through llama.cpp's own chat template and tokenizer, as a user's chat would go
    server = parity.llama_cpp_server(result.archive)
    try:
        reply = server.handle_chat_completions(
            {"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 12, "temperature": 0}
        )
    finally:
        del server
    assert reply["choices"][0]["message"]["content"].strip()
