"""The UI without a browser: every string localized, the form is the config, safe launch rules."""

import pytest

from workbench import locale
from workbench.config import FIELDS, RunConfig, from_dict, load_config, save_config
from workbench.ui.app import create_app, is_loopback, launch, read_auth
from workbench.ui.form import config_from_values


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(lang="en", saves=tmp_path_factory.mktemp("saves"))


def test_every_registered_string_exists_in_both_languages(app):
    loc = app.wb_context.loc
    assert len(loc.entries) > 80
    for _, key in loc.entries:
        for lang in locale.LANGUAGES:
            assert locale.t_optional(key, lang), f"{key} has no {lang} text"


def test_locale_table_is_complete_and_distinct():
    for key, entry in locale.STRINGS.items():
        assert set(entry) == set(locale.LANGUAGES), key
        assert all(v.strip() for v in entry.values()), key
    chinese = sum(any("\u4e00" <= ch <= "\u9fff" for ch in e["zh"]) for e in locale.STRINGS.values())
    assert chinese > 0.8 * len(locale.STRINGS)


def test_language_switch_relabels_every_component(app):
    updates = app.wb_context.loc.updates("zh")
    assert len(updates) == len(app.wb_context.loc.entries)
    labels = [u.get("label") or u.get("value") for u in updates]
    assert "开始" in labels and "学习率" in labels


def test_every_field_has_exactly_one_control(app):
    fields = app.wb_context.fields
    assert set(fields) == set(FIELDS)


def test_the_form_defaults_are_the_config_defaults(app):
    fields = app.wb_context.fields
    values = {name: component.value for name, component in fields.items()}
    assert config_from_values(values) == RunConfig(dataset="identity")


def test_what_the_form_submits_is_what_the_yaml_runs(tmp_path):
    values = {
        "dataset": ["identity"],
        "learning_rate": 1e-3,
        "quantization_bit": "4",
        "packing": "none",
        "lora_alpha": None,
        "use_dora": True,
        "max_steps": 7,
    }
    cfg = config_from_values(values)
    save_config(cfg, tmp_path / "c.yaml")
    assert (
        load_config(tmp_path / "c.yaml")
        == cfg
        == from_dict(
            {"dataset": "identity", "learning_rate": 1e-3, "quantization_bit": 4, "use_dora": True, "max_steps": 7}
        )
    )


def test_a_public_host_needs_a_login():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(SystemExit, match="without a login"):
        launch(host="0.0.0.0", block=False)
    assert read_auth("ann:secret", None) == [("ann", "secret")]
    with pytest.raises(SystemExit, match="user:password"):
        read_auth("ann", None)
    with pytest.raises(SystemExit, match="non-empty password") as refused:
        read_auth("alice:", None)
    assert "Traceback" not in str(refused.value)


def test_the_run_form_reads_datasets_from_the_folder_the_app_serves(tmp_path):
    """`workbench ui --dataset-dir D`: the Data tab lists D, and a run started from the form
    reads its datasets from D too (not from ./data)."""
    from workbench.ui.app import create_app

    folder = tmp_path / "my-data"
    folder.mkdir()
    app = create_app(saves=tmp_path / "saves", dataset_dir=str(folder))
    field = app.wb_context.fields["dataset_dir"]
    shown = next(c for c in app.get_config_file()["components"] if c["id"] == field._id)
    assert field.value == shown["props"]["value"] == str(folder)
