"""Every kind of export loads in plain transformers/peft in a FRESH process and gives the outputs
of the model inside the workbench (base + adapter, as the chat tab loads it).

All exports of the tiny model are made once (three of them through the CLI), then one fresh
process loads them all and reports logits and greedy generations."""

import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from workbench import export, models
from workbench.cli import main as cli_main
from workbench.data.registry import SHIPPED_DIR

from conftest import as_f16_stores_it, run_cli

IDS = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 2]])
NEW_TOKENS = 8

# Runs in a fresh interpreter: nothing from the workbench, only transformers/peft/gguf.
PROBE = (
    r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
specs = json.loads(open(sys.argv[1]).read())
ids = torch.tensor(specs.pop("__ids__"))
out = {}
def load_and_run(spec):
    kwargs = {}
    if spec.get("gguf_file"):
        kwargs = {"gguf_file": spec["gguf_file"], "dtype": torch.float32}
    elif spec.get("dtype"):
        kwargs = {"dtype": spec["dtype"]}
    if spec.get("adapter_of"):
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(spec["adapter_of"]), spec["path"])
    else:
        model = AutoModelForCausalLM.from_pretrained(spec["path"], **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(spec["path"], **({"gguf_file": spec["gguf_file"]} if spec.get("gguf_file") else {}))
    # bitsandbytes' CPU inference kernel (taken without grad) needs layers wider than the tiny
    # model's 32, so the quantized ones run with grad enabled
    with torch.set_grad_enabled(bool(spec.get("logits_only"))):
        logits = model(ids).logits.float().detach()
    with torch.no_grad():
        generated = [] if spec.get("logits_only") else model.generate(
            ids, max_new_tokens=%d, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    return {"logits": logits, "generated": generated, "dtype": str(model.dtype),
            "modules": sorted({type(m).__name__ for m in model.modules()}),
            "chat_template": bool(tokenizer.chat_template)}
for name, spec in specs.items():
    try:
        out[name] = load_and_run(spec)
    except Exception as err:
        out[name] = {"error": f"{type(err).__name__}: {err}"}
torch.save(out, sys.argv[2])
"""
    % NEW_TOKENS
)


def probe(tmp_path, specs: dict) -> dict:
    spec_file, out_file = tmp_path / "specs.json", tmp_path / "probe.pt"
    spec_file.write_text(json.dumps({**specs, "__ids__": IDS.tolist()}))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec_file), str(out_file)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": ""},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out_file)


def loaded(made, name):
    result = made["seen"][name]  # what the fresh process saw
    assert "error" not in result, f"{name}: {result.get('error')}"
    return result


def train_run(saves, tiny_model_dir, name, **keys):
    from workbench.config import from_dict
    from workbench.train import run

    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "max_steps": 3,
            "save_steps": 100,
            "learning_rate": 5e-2,
            "cutoff_len": 64,
            "logging_steps": 1,
            **keys,
        }
    )
    run(cfg, saves / name, echo=False)
    return saves / name


def in_workbench(base_dir, adapter_dir=None, quantization_bit=None):
    """The model the workbench itself would chat with: base (+ adapter), as chat.py loads it."""
    model = models.load_causal_lm(str(base_dir), compute_type="fp32", device="cpu", quantization_bit=quantization_bit)
    return PeftModel.from_pretrained(model, str(adapter_dir)) if adapter_dir else model


def outputs(model):
    with torch.no_grad():
        return model(IDS).logits.float(), model.generate(IDS, max_new_tokens=NEW_TOKENS, do_sample=False)[
            0, IDS.shape[1] :
        ].tolist()


@pytest.fixture(scope="module")
def made(trained_lora_run, tiny_model_dir, tmp_path_factory):
    """Every kind of export of the tiny LoRA run (plus IA3, prompt tuning, QLoRA runs), and what a
    fresh process sees when it loads each."""
    tmp = tmp_path_factory.mktemp("exports")
    saves = tmp / "saves"
    run = trained_lora_run
    # the CLI (in this process: loading in a fresh one is the probe's job below)
    for argv in (
        ["--merge", "--dtype", "fp16", "--out", str(tmp / "cli-fp16")],
        ["--gguf", "q8_0"],
        ["--quantize", "4bit"],
    ):
        assert cli_main(["export", "--run", str(run), *argv]) == 0, argv
    results = {
        "merged": export.export_merged(run, "fp32", max_shard_size="200KB"),
        "bf16": export.export_merged(run, "bf16", with_zip=False),
        "adapter": export.export_adapter(run),
        "gguf_f16": export.export_gguf(run, "f16"),
        "bnb8": export.export_quantized(run, "8bit", with_zip=False),
    }
    ia3 = train_run(saves, tiny_model_dir, "ia3-run", finetuning_type="ia3")
    prompt = train_run(saves, tiny_model_dir, "prompt-run", finetuning_type="prompt_tuning", num_virtual_tokens=4)
    qlora = train_run(saves, tiny_model_dir, "qlora-run", quantization_bit=4, lora_rank=4)
    dora = train_run(saves, tiny_model_dir, "dora-run", lora_rank=4, use_dora=True, use_rslora=True)
    pissa = train_run(saves, tiny_model_dir, "pissa-run", lora_rank=4, pissa_init=True)
    results["dora"] = export.export_merged(dora, with_zip=False)
    results["pissa"] = export.export_merged(pissa, with_zip=False)
    results["ia3"] = export.export_merged(ia3)
    results["prompt"] = export.export_merged(prompt)
    results["qlora"] = export.export_merged(qlora)
    gguf_q8 = run / "exports" / "gguf-q8_0"
    specs = {
        "merged": {"path": str(results["merged"].folder)},
        "cli_fp16": {"path": str(tmp / "cli-fp16"), "dtype": "auto"},
        "bf16": {"path": str(results["bf16"].folder), "dtype": "auto"},
        "adapter": {"path": str(results["adapter"].folder), "adapter_of": str(tiny_model_dir)},
        "gguf_f16": {"path": str(results["gguf_f16"].folder), "gguf_file": results["gguf_f16"].archive.name},
        "gguf_q8": {"path": str(gguf_q8), "gguf_file": next(gguf_q8.glob("*.gguf")).name},
        "bnb4": {"path": str(run / "exports" / "bnb-4bit"), "logits_only": True},
        "bnb8": {"path": str(results["bnb8"].folder), "logits_only": True},
        "ia3": {"path": str(results["ia3"].folder)},
        "dora": {"path": str(results["dora"].folder)},
        "pissa": {"path": str(results["pissa"].folder)},
        "prompt": {"path": str(results["prompt"].folder), "adapter_of": str(tiny_model_dir)},
        "qlora": {"path": str(results["qlora"].folder)},
    }
    runs = {"lora": run, "ia3": ia3, "prompt": prompt, "qlora": qlora, "dora": dora, "pissa": pissa}
    return {"results": results, "seen": probe(tmp, specs), "runs": runs, "tmp": tmp}


def test_merged_model_in_a_fresh_process_matches_base_plus_adapter(made, trained_lora_run, tiny_model_dir):
    reference, generated = outputs(in_workbench(tiny_model_dir, trained_lora_run / "final"))
    base_logits, _ = outputs(in_workbench(tiny_model_dir))
    seen = loaded(made, "merged")
    assert torch.allclose(seen["logits"], reference, atol=1e-4)
    assert not torch.allclose(seen["logits"], base_logits, atol=1e-3)  # the adapter did something
    assert seen["generated"] == generated and seen["chat_template"]
    folder = made["results"]["merged"].folder
    # sharded at the chosen size, with tokenizer, chat template, generation config and a card
    assert len(list(folder.glob("model-*.safetensors"))) > 1 and (folder / "model.safetensors.index.json").is_file()
    for name in ("tokenizer_config.json", "chat_template.jinja", "generation_config.json", "README.md"):
        assert (folder / name).is_file(), name
    names = zipfile.ZipFile(made["results"]["merged"].archive).namelist()
    assert "merged-fp32/config.json" in names and "merged-fp32/model.safetensors.index.json" in names


def test_model_card_names_base_method_dataset_hyperparameters_and_final_loss(made, trained_lora_run, tiny_model_dir):
    card = (made["results"]["merged"].folder / "README.md").read_text()
    assert str(tiny_model_dir) in card and "lora" in card and "identity" in card
    assert "learning_rate" in card and "lora_rank" in card and "num_virtual_tokens" not in card
    losses = [
        json.loads(line)["loss"]
        for line in (trained_lora_run / "events.jsonl").read_text().splitlines()
        if '"loss"' in line and json.loads(line).get("type") == "log"
    ]
    assert f"| loss | {losses[-1]:.4g} |" in card


def test_dtypes_fp16_and_bf16_are_kept_and_still_match(made, trained_lora_run, tiny_model_dir):
    reference, _ = outputs(in_workbench(tiny_model_dir, trained_lora_run / "final"))
    assert loaded(made, "cli_fp16")["dtype"] == "torch.float16"
    assert loaded(made, "bf16")["dtype"] == "torch.bfloat16"
    assert torch.allclose(loaded(made, "cli_fp16")["logits"], reference, atol=5e-2)
    assert torch.allclose(loaded(made, "bf16")["logits"], reference, atol=0.3)


def test_adapter_alone_loads_in_plain_peft(made, trained_lora_run, tiny_model_dir):
    reference, generated = outputs(in_workbench(tiny_model_dir, trained_lora_run / "final"))
    assert torch.allclose(loaded(made, "adapter")["logits"], reference, atol=1e-5)
    assert loaded(made, "adapter")["generated"] == generated
    assert "adapter/adapter_config.json" in zipfile.ZipFile(made["results"]["adapter"].archive).namelist()
    assert "PeftModel.from_pretrained" in (made["results"]["adapter"].folder / "README.md").read_text()


@pytest.mark.parametrize("variant", ["dora", "pissa"])
def test_lora_variants_merge_to_the_model_the_workbench_runs(made, tiny_model_dir, variant):
    reference, generated = outputs(in_workbench(tiny_model_dir, made["runs"][variant] / "final"))
    base_logits, _ = outputs(in_workbench(tiny_model_dir))
    seen = loaded(made, variant)
    assert torch.allclose(seen["logits"], reference, atol=1e-4) and seen["generated"] == generated
    assert not torch.allclose(seen["logits"], base_logits, atol=1e-3)


def test_ia3_merges_and_prompt_tuning_exports_its_adapter_with_a_card(made, tiny_model_dir):
    ia3_ref, _ = outputs(in_workbench(tiny_model_dir, made["runs"]["ia3"] / "final"))
    assert made["results"]["ia3"].kind == "merged"
    assert torch.allclose(loaded(made, "ia3")["logits"], ia3_ref, atol=1e-4)
    prompt = made["results"]["prompt"]
    assert prompt.kind == "adapter" and prompt.notes and "cannot be merged" in prompt.notes[0]
    card = (prompt.folder / "README.md").read_text()
    assert "cannot be merged" in card and "PeftModel.from_pretrained" in card
    prompt_ref, prompt_gen = outputs(in_workbench(tiny_model_dir, made["runs"]["prompt"] / "final"))
    assert torch.allclose(loaded(made, "prompt")["logits"], prompt_ref, atol=1e-5)


def test_a_4bit_run_is_merged_into_a_float_base(made, tiny_model_dir):
    """QLoRA trained on 4-bit weights; the export is a plain float model: the adapter merged into
    the float base (what the adapter gives on top of the float base, not a dequantized copy)."""
    seen = loaded(made, "qlora")
    assert seen["dtype"] == "torch.float32" and "Linear4bit" not in seen["modules"]
    float_ref, _ = outputs(in_workbench(tiny_model_dir, made["runs"]["qlora"] / "final"))
    assert torch.allclose(seen["logits"], float_ref, atol=1e-4)
    config = json.loads((made["results"]["qlora"].folder / "config.json").read_text())
    assert "quantization_config" not in config


def test_bitsandbytes_exports_reload_quantized(made, trained_lora_run, tiny_model_dir):
    from transformers import BitsAndBytesConfig

    merged = made["results"]["merged"].folder
    for name, bits, module in (("bnb4", 4, "Linear4bit"), ("bnb8", 8, "Linear8bitLt")):
        seen = loaded(made, name)
        assert module in seen["modules"], seen["modules"]
        quant = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
            if bits == 4
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        # the workbench's own 4/8-bit load of the merged model gives the same outputs
        reference = AutoModelForCausalLM.from_pretrained(
            merged, quantization_config=quant, dtype=torch.float32, device_map={"": "cpu"}
        )
        ref_logits = reference(IDS).logits.float().detach()  # with grad: see the probe
        assert torch.allclose(seen["logits"], ref_logits, atol=1e-3), name


def test_gguf_round_trip_through_transformers(made, trained_lora_run, tiny_model_dir):
    merged = in_workbench(tiny_model_dir, trained_lora_run / "final").merge_and_unload()
    _, generated = outputs(merged)
    _, generated_f16 = outputs(as_f16_stores_it(merged))  # the same weights rounded as f16 stores them
    assert loaded(made, "gguf_f16")["generated"] == generated_f16
    q8 = loaded(made, "gguf_q8")["generated"]
    assert sum(a == b for a, b in zip(q8, generated)) >= NEW_TOKENS - 2, (q8, generated)
    assert loaded(made, "gguf_q8")["chat_template"]
    folder = made["results"]["gguf_f16"].folder
    modelfile = (folder / "Modelfile").read_text()
    assert f"FROM ./{made['results']['gguf_f16'].archive.name}" in modelfile
    assert "<|im_start|>" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


def test_exports_are_listed_per_run_and_deletable(made, trained_lora_run):
    entries = {e.name: e for e in export.export_entries(trained_lora_run)}
    assert {"merged-fp32", "adapter", "gguf-f16", "gguf-q8_0", "bnb-4bit", "bnb-8bit"} <= set(entries)
    assert entries["gguf-q8_0"].downloads[0].suffix == ".gguf"  # the single file, no zip
    assert entries["merged-fp32"].downloads == [trained_lora_run / "exports" / "merged-fp32.zip"]
    export.delete_export(trained_lora_run, "bnb-8bit")
    assert "bnb-8bit" not in {e.name for e in export.export_entries(trained_lora_run)}
    with pytest.raises(export.ExportError, match="not an export"):
        export.delete_export(trained_lora_run, "../config.yaml")


def test_not_enough_disk_space_is_refused_before_writing(trained_lora_run, monkeypatch):
    from workbench.export import common, kinds

    monkeypatch.setattr(common, "free_bytes", lambda folder: 10 * 2**20)
    monkeypatch.setattr(kinds, "load_merged", lambda src: pytest.fail("loaded the model before checking"))
    for kind in ("merged", "bnb", "gguf"):
        with pytest.raises(export.ExportError, match="not enough disk space.*MB are free"):
            export.run_export(trained_lora_run, kind, dtype="fp16")
    assert not (trained_lora_run / "exports" / "merged-fp16").exists()
    assert not (trained_lora_run / "exports" / ".merged-fp16.tmp").exists()


def test_a_run_without_a_result_is_a_clear_error(tmp_path):
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(export.ExportError, match="no saved result"):
        export.export_merged(tmp_path / "empty-run")
    done = run_cli("export", "--run", str(tmp_path / "nope"), "--merge")
    assert done.returncode == 2 and "no such run" in done.stderr


def test_every_export_kind_carries_a_parity_report(made, trained_lora_run):
    """Reloaded in its own runtime and compared with the trained model: in parity.json, the card
    and the result; float exports also give the largest logit difference."""
    for name, result in made["results"].items():
        if not result.folder.exists():
            continue  # deleted by the listing test
        report = json.loads((result.folder / "parity.json").read_text())
        assert report == result.parity, name
        assert report["status"] in ("ok", "beyond") and report["prompts"] == 5, (name, report["summary"])
        assert "## Parity with the trained model" in (result.folder / "README.md").read_text(), name
    for name in ("merged", "adapter", "dora", "pissa", "ia3", "prompt", "qlora"):
        report = made["results"][name].parity
        assert report["status"] == "ok" and report["identical_answers"] == 5, (name, report["summary"])
        assert report["max_diff"] < 1e-3, name
    assert made["results"]["bf16"].parity["max_diff"] is not None
    assert made["results"]["bnb8"].parity["max_diff"] is None  # quantized: token agreement only
    assert made["results"]["bnb8"].parity["status"] in ("ok", "beyond")
    assert made["results"]["bnb8"].parity["runtime"] == "transformers + bitsandbytes (int8)"
    # the whole exports folder is listed with what the tab shows
    for entry in export.export_entries(trained_lora_run):
        if entry.name in ("merged-fp32", "adapter", "gguf-f16", "gguf-q8_0", "bnb-4bit"):
            assert export.read_parity(entry.folder), entry.name
