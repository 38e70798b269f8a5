"""Merged exports load in plain transformers and match base + adapter; the adapter alone loads in
plain peft; zips hold whole folders and nothing half-written lists as an export."""
import zipfile

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from workbench import export

IDS = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 2]])


def test_merged_model_gives_the_logits_of_base_plus_adapter(trained_lora_run, tiny_model_dir):
    result = export.export_merged(trained_lora_run)
    merged = AutoModelForCausalLM.from_pretrained(result.folder)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        base_logits = base(IDS).logits
        reference = PeftModel.from_pretrained(base, trained_lora_run / "final")(IDS).logits
        merged_logits = merged(IDS).logits
    assert torch.allclose(merged_logits, reference, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3)
    assert (result.folder / "tokenizer_config.json").is_file()
    assert (result.folder / "chat_template.jinja").is_file()
    names = zipfile.ZipFile(result.archive).namelist()
    assert "merged-fp32/model.safetensors" in names and "merged-fp32/config.json" in names


def test_fp16_merge_keeps_the_dtype(trained_lora_run):
    folder = export.merge_adapter(trained_lora_run, trained_lora_run / "exports" / "half", dtype="fp16")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto")
    assert model.dtype == torch.float16


def test_adapter_export_loads_in_plain_peft(trained_lora_run, tiny_model_dir):
    result = export.export_adapter(trained_lora_run)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, result.folder)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert "adapter/adapter_config.json" in zipfile.ZipFile(result.archive).namelist()


def test_temporary_folders_never_list_as_exports(trained_lora_run):
    (trained_lora_run / "exports" / ".merged-bf16.tmp").mkdir(parents=True, exist_ok=True)
    names = [p.name for p in export.list_exports(trained_lora_run)]
    assert ".merged-bf16.tmp" not in names and "adapter" in names


def test_a_run_without_a_result_is_a_clear_error(tmp_path):
    (tmp_path / "empty-run").mkdir()
    try:
        export.export_merged(tmp_path / "empty-run")
    except export.ExportError as err:
        assert "no saved result" in str(err)
    else:
        raise AssertionError("expected ExportError")
