"""Messages built by the core carry a locale key: English on the command line and in job.json,
the session's language in the page, kept across a save and a load of the job."""

import copy

from workbench import locale
from workbench.jobs import Job, JobController
from workbench.locale import Message


def test_a_message_reads_as_english_and_renders_in_chinese():
    msg = Message("jobmsg.cannot_resume", run="r1", status=Message("jobstate.running"))
    assert msg == "run r1 cannot be resumed while it is running"
    assert locale.render(msg, "zh") == "任务 r1 处于“运行中”状态，无法继续训练"
    assert copy.deepcopy(msg).render("zh") == msg.render("zh")
    assert locale.render("a plain error text", "zh") == "a plain error text"
    assert locale.render_error(ValueError(msg), "zh") == msg.render("zh")


def test_a_jobs_message_survives_save_and_load(tmp_path):
    job = Job(
        run_id="r1",
        status="aborted",
        message=Message("jobmsg.sigterm_then", reason=Message("jobmsg.stopped_gracefully")),
    )
    job.save(tmp_path)
    loaded = Job.load(tmp_path)
    assert loaded.message == job.message
    assert locale.render(loaded.message, "zh") == "宽限期后以 SIGTERM 终止；已正常停止：检查点和结果已保存"


def test_a_hand_edited_message_key_falls_back_to_the_text(tmp_path):
    job = Job(run_id="r1", status="failed", message=Message("jobmsg.stopped"))
    job.save(tmp_path)
    path = tmp_path / "job.json"
    path.write_text(path.read_text().replace('"jobmsg.stopped"', '"no.such.key"'))
    loaded = Job.load(tmp_path)
    assert loaded.status == "failed" and locale.render(loaded.message, "zh") == "stopped"


def test_controller_refusals_render_in_chinese(tmp_path):
    controller = JobController(tmp_path)
    try:
        controller.resume("missing")
    except ValueError as err:
        assert "任务 missing" in locale.render_error(err, "zh") or "没有这个任务" in locale.render_error(err, "zh")
    else:
        raise AssertionError("resuming a missing run was accepted")
