"""The frames the Train tab's charts get: whole steps, training and evaluation loss together,
optional smoothing, localized series names, the time of each point for the hover; and a
logging_steps that draws enough points on a short run."""

import pandas as pd
import pytest

from workbench import locale
from workbench.config import RunConfig, resolve_logging_steps
from workbench.events import EventWriter
from workbench.progress import RunMonitor
from workbench.ui.train_tab import TIME_COLUMN, chart_update, loss_frame, lr_frame, smoothed


@pytest.fixture
def monitor(tmp_path):
    writer = EventWriter(tmp_path)
    writer.emit("start", step=0, max_steps=8)
    for step in range(1, 9):
        writer.emit("log", step=step, loss=2.0 / step, learning_rate=1e-4 * (9 - step) / 8)
        if step % 4 == 0:
            writer.emit("eval", step=step, eval_loss=1.5 / step)
    mon = RunMonitor(tmp_path)
    mon.update()
    return mon


def test_loss_frame_has_whole_steps_both_losses_and_times(monitor):
    frame = loss_frame(monitor)
    assert pd.api.types.is_integer_dtype(frame["step"])
    assert sorted(frame["series"].unique()) == ["evaluation loss", "training loss"]
    assert list(frame.loc[frame["series"] == "evaluation loss", "step"]) == [4, 8]
    assert frame[TIME_COLUMN].str.fullmatch(r"\d\d:\d\d:\d\d").all()


def test_learning_rate_frame_is_on_whole_steps(monitor):
    frame = lr_frame(monitor)
    assert pd.api.types.is_integer_dtype(frame["step"])
    assert list(frame["step"]) == list(range(1, 9))


def test_chart_axis_spans_whole_steps_of_the_planned_run(monitor):
    update = chart_update(loss_frame(monitor), monitor)
    assert update["x_lim"] == [0, 20]  # a short run still gets an axis of whole numbers
    monitor.max_steps = 300
    assert chart_update(loss_frame(monitor), monitor)["x_lim"] == [0, 300]
    assert chart_update(None, monitor) is None


def test_smoothing_adds_a_smoothed_curve_that_starts_at_the_first_point(monitor):
    assert "training loss, smoothed" not in set(loss_frame(monitor)["series"])
    frame = loss_frame(monitor, smoothing=0.6)
    curve = frame[frame["series"] == "training loss, smoothed"]
    assert len(curve) == len(monitor.loss)
    assert curve["value"].iloc[0] == pytest.approx(monitor.loss[0][1])
    raw = [v for _, v in monitor.loss]
    # the average lags the falling raw loss: above it after the first point
    assert all(s > r for s, r in zip(curve["value"].iloc[1:], raw[1:]))
    assert smoothed([(1, 3.0)], 0.9) == [(1, pytest.approx(3.0))]


def test_series_names_follow_the_language(monitor):
    frame = loss_frame(monitor, "zh", 0.5)
    assert set(frame["series"]) == {
        locale.t("chart.loss", "zh"),
        locale.t("chart.eval_loss", "zh"),
        locale.t("chart.smoothed", "zh"),
    }
    assert set(lr_frame(monitor, "zh")["series"]) == {"学习率"}


def test_no_points_no_frame(tmp_path):
    mon = RunMonitor(tmp_path)
    mon.update()
    assert loss_frame(mon) is None and lr_frame(mon) is None


@pytest.mark.parametrize("max_steps, expected", [(8, 1), (40, 1), (200, 4), (1000, 10), (10**6, 10)])
def test_default_logging_steps_gives_enough_points(max_steps, expected):
    steps = resolve_logging_steps(RunConfig(max_steps=max_steps))
    assert steps == expected
    assert max_steps // steps >= min(max_steps, 20)


def test_logging_steps_the_user_set_is_kept_and_epochs_use_a_fraction():
    assert resolve_logging_steps(RunConfig(max_steps=40, logging_steps=7)) == 7
    assert resolve_logging_steps(RunConfig(max_steps=-1)) == pytest.approx(0.02)
