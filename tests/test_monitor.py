"""Hardware monitor: the training process writes its own figures; the Train tab charts them."""

from __future__ import annotations

from workbench.config import from_dict

from conftest import ROOT


def test_a_training_run_records_its_hardware_and_a_viewer_charts_it(tiny_model_dir, tmp_path, monkeypatch):
    from workbench import monitor
    from workbench.events import read_all
    from workbench.progress import RunMonitor
    from workbench.train import run
    from workbench.ui.train_tab import HARDWARE_CHARTS, hardware_frames

    monkeypatch.setattr(monitor, "INTERVAL_SECONDS", 0.05)
    run_dir = tmp_path / "saves" / "hw-run"
    run(
        from_dict(
            {
                "model_name_or_path": str(tiny_model_dir),
                "dataset": "identity",
                "dataset_dir": str(ROOT / "data"),
                "max_steps": 3,
                "save_steps": 100,
                "per_device_train_batch_size": 2,
                "cutoff_len": 64,
                "lora_rank": 4,
            }
        ),
        run_dir,
        echo=False,
    )
    events = read_all(run_dir)
    samples = [e for e in events if e["type"] == "hw"]
    assert len(samples) >= 2
    phases = [e.get("phase") for e in events if e["type"] == "phase"]
    assert phases[-2:] == ["training", "saving"]
    first_hw = events.index(samples[0])
    assert events[first_hw - 1]["type"] in ("phase", "start", "step", "log", "hw")  # written while training
    for s in samples:
        assert 0 <= s["cpu_percent"] <= 100 and 0 <= s["system_memory_percent"] <= 100
        assert s["process_memory_mb"] > 50 and s["system_memory_used_mb"] >= s["process_memory_mb"] * 0.5
        assert s["disk_free_gb"] > 0
        assert "gpu_util_percent" not in s and "gpu_memory_used_mb" not in s  # no GPU on this machine

    # a viewer (also one that re-attaches later: a fresh monitor of the folder) draws the charts
    mon = RunMonitor(run_dir)
    mon.update()
    assert mon.new_hardware and len(mon.hardware) == len(samples)
    frames = dict(zip(HARDWARE_CHARTS, hardware_frames(mon, "en")))
    assert set(frames["percent"]["series"]) == {"CPU (this run)", "CPU (whole machine)", "memory (whole machine)"}
    assert set(frames["memory"]["series"]) == {"this run", "memory (whole machine)"}
    assert list(frames["disk"]["value"]) == [s["disk_free_gb"] for s in samples]
    assert frames["disk"]["seconds"].iloc[0] == 0 and frames["disk"]["seconds"].is_monotonic_increasing
    assert set(dict(zip(HARDWARE_CHARTS, hardware_frames(mon, "zh")))["memory"]["series"]) == {"本任务", "内存（整机）"}
    mon.update()
    assert not mon.new_hardware  # nothing new: the charts are not redrawn


def test_no_samples_draw_empty_charts(tmp_path):
    from workbench.progress import RunMonitor
    from workbench.ui.train_tab import HARDWARE_CHARTS, hardware_frames

    mon = RunMonitor(tmp_path)
    mon.update()
    assert hardware_frames(mon, "en") == [None] * len(HARDWARE_CHARTS)
