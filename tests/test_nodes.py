"""Several machines: two torchrun "nodes" on loopback (gloo, CPU) train like one process with the
same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import yaml

from workbench.config import ConfigError, from_dict
from workbench.events import read_all

from conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def losses(run_dir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_all(run_dir) if e["type"] == "log" and "loss" in e}


@pytest.mark.slow
def test_two_nodes_on_loopback_match_one_process_with_the_same_global_batch(tiny_model_dir, tmp_path):
    common = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset": "identity",
        "dataset_dir": str(ROOT / "data"),
        "max_steps": 3,
        "logging_steps": 1,
        "save_steps": 100,
        "learning_rate": 1e-2,
        "cutoff_len": 64,
        "lora_rank": 4,
        "lora_dropout": 0.0,
        "compute_type": "fp32",
    }
    config = tmp_path / "nodes.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **common,
                "per_device_train_batch_size": 2,
                "nnodes": 2,
                "master_addr": "127.0.0.1",
                "master_port": free_port(),
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "workbench", "train", str(config), "--set", f"node_rank={rank}"],
            cwd=tmp_path,
            env={**env, "WORKBENCH_SAVES": str(tmp_path / f"node{rank}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "--nnodes=2" in outputs[0] and "--node_rank=1" in outputs[1]
    runs = list((tmp_path / "node0").iterdir())
    assert len(runs) == 1 and (runs[0] / "final" / "adapter_model.safetensors").is_file()
    two = losses(runs[0])
    assert not list((tmp_path / "node1").glob("*/final"))  # node 0 keeps the result

    from workbench.train import run

    single = tmp_path / "single"
    run(from_dict({**common, "per_device_train_batch_size": 4}), single, echo=False)
    one = losses(single)
    assert two.keys() == one.keys() == {1, 2, 3}
    assert all(two[s] == pytest.approx(one[s], rel=2e-3) for s in one), (two, one)


def test_node_commands_and_launch_lines():
    from workbench.distributed import launch_prefix, other_node_commands, uses_torchrun

    cfg = from_dict({"dataset": "identity", "nnodes": 3, "master_addr": "10.0.0.5", "master_port": 29600})
    assert uses_torchrun(cfg)
    line = launch_prefix(1, cfg)
    assert "--nnodes=3" in line and "--node_rank=0" in line and "--master_addr=10.0.0.5" in line
    assert "--master_port=29600" in line and "--nproc_per_node=1" in line
    assert other_node_commands(cfg, "saves/r/config.yaml") == [
        "workbench train saves/r/config.yaml --set node_rank=1",
        "workbench train saves/r/config.yaml --set node_rank=2",
    ]
    cfg.rdzv_backend, cfg.rdzv_id = "c10d", "job7"
    line = launch_prefix(2, cfg)
    assert "--rdzv_backend=c10d" in line and "--rdzv_endpoint=10.0.0.5:29600" in line and "--rdzv_id=job7" in line
    assert not uses_torchrun(from_dict({"dataset": "identity"}))


def test_a_node_rank_outside_the_nodes_is_refused():
    with pytest.raises(ConfigError, match="'node_rank' 2 must be below 'nnodes' \\(2\\)"):
        from_dict({"dataset": "identity", "nnodes": 2, "node_rank": 2})


def test_the_train_tab_shows_the_commands_for_the_other_nodes(tmp_path):
    from workbench.config import save_config
    from workbench.ui.train_tab import other_nodes_text

    path = tmp_path / "r" / "config.yaml"
    save_config(from_dict({"dataset": "identity", "nnodes": 2, "master_addr": "10.0.0.5"}), path)
    text = other_nodes_text(path, "en")
    assert "This machine is node 0" in text and f"workbench train {path} --set node_rank=1" in text
    save_config(from_dict({"dataset": "identity"}), path)
    assert other_nodes_text(path, "en") == ""
