"""`make dev`'s quiet terminal (motionrelay_local/devlog.py): job stages as short lines, every
function line into the JSON log file, errors flagged."""

from __future__ import annotations

import io
import json

from motionrelay_local.devlog import DevLog, JobWatcher


class FakeTable:
    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def set(self, job_id: str, phase: str, updated: str, provider: str | None = "kie") -> None:
        item = {"pk": {"S": f"JOB#{job_id}"}, "phase": {"S": phase}, "updated_at": {"S": updated},
                "created_at": {"S": "2026-12-02T17:00:00.000Z"}}
        if provider:
            item["provider"] = {"S": provider}
        self.items[job_id] = item

    def scan(self, **kwargs) -> dict:
        assert kwargs["FilterExpression"] == "sk = :job"  # jobs only, not keys or uploads
        return {"Items": list(self.items.values())}


def test_each_stage_a_job_takes_is_one_line_with_the_time_spent_before_it():
    table, said = FakeTable(), []
    watcher = JobWatcher(table, "jobs", said.append)
    table.set("job_1", "pending", "2026-12-02T17:00:00.100Z", provider=None)
    assert watcher.check() == ["job_1  -         accepted -> placing  0.1 s"]
    assert watcher.check() == []  # nothing new, nothing said
    table.set("job_1", "queued", "2026-12-02T17:00:00.400Z")
    table.set("job_1", "running", "2026-12-02T17:00:01.400Z")  # two writes between passes: the last
    assert watcher.check() == ["job_1  kie       placing -> provider_running  1.3 s"]
    table.set("job_1", "succeeded", "2026-12-02T17:00:04.400Z")
    assert watcher.check() == ["job_1  kie       provider_running -> succeeded  3.0 s"]
    assert len(said) == 3  # what check() returned is what the terminal got


def test_function_lines_go_to_the_file_as_json_and_only_errors_to_the_terminal(tmp_path):
    terminal = io.StringIO()
    log = DevLog(tmp_path / "out" / "dev-3000.log", terminal)
    poll = json.dumps({"level": "INFO", "message": "poll pass done"})
    log.function_output("PollerFunction", "stdout", poll)
    log.function_output("ApiFunction", "stderr", "UserWarning: No application metrics to publish.\n")
    log.function_output("ApiFunction", "stdout", json.dumps({"level": "ERROR", "message": "boom"}))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "out" / "dev-3000.log").read_text().splitlines()]
    assert [(r["function"], r["message"][:15]) for r in lines] == [
        ("PollerFunction", "poll pass done"), ("ApiFunction", "UserWarning: No"), ("ApiFunction", "boom")]
    shown = terminal.getvalue()
    assert "boom" in shown and "dev-3000.log" in shown
    assert "poll pass" not in shown and "metrics" not in shown  # no Powertools warnings on the terminal
