"""The transfer function: stream the provider's output into S3, exactly once."""

from __future__ import annotations

import hashlib
import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import transfer_handler
from conftest import SAMPLES, FakeContext, load_event
from motionrelay.domain.job import ProviderState, ProviderStatus
from test_api import get_job, post_job, sample_request


@pytest.fixture
def transferring_job(aws, kie_cdn):
    from motionrelay.lifecycle import apply

    _, job = post_job(sample_request())
    apply(job["id"], ProviderStatus(ProviderState.SUCCEEDED, output_url="https://cdn.kie.example/r/out.mp4"))
    return job


def sqs_event(job_id: str) -> dict:
    event = load_event("sqs_transfer.json")
    event["Records"][0]["body"] = json.dumps({"job_id": job_id})
    return event


def output_objects() -> list[dict]:
    from motionrelay.infra.aws import client

    return client("s3").list_objects_v2(Bucket="media", Prefix="outputs/").get("Contents", [])


def cdn_downloads(kie) -> int:
    return sum(1 for _, path in kie.calls if path == "/r/out.mp4")


def test_transfer_stores_the_video_and_completes_the_job(aws, kie_cdn, transferring_job):
    result = transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext())

    assert result == {"batchItemFailures": []}
    status, job = get_job(transferring_job["id"])
    video = (SAMPLES / "motion.mp4").read_bytes()
    assert job["status"] == "succeeded" and job["completed_at"]
    assert job["output"]["sha256"] == hashlib.sha256(video).hexdigest()
    assert job["output"]["size_bytes"] == len(video)
    assert job["output"]["content_type"] == "video/mp4"
    assert "outputs/" in job["output"]["url"] and job["output"]["expires_at"]
    assert [o["Key"] for o in output_objects()] == [f"outputs/{transferring_job['id']}.mp4"]


def test_a_duplicate_message_copies_nothing(aws, kie_cdn, transferring_job):
    for _ in range(2):
        assert transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext()) == {
            "batchItemFailures": []}
    assert cdn_downloads(kie_cdn) == 1 and len(output_objects()) == 1


def test_crash_between_copy_and_state_write_recovers_without_a_second_copy(
        aws, kie_cdn, transferring_job, monkeypatch):
    import motionrelay.transfer as transfer

    real_complete = transfer.complete
    monkeypatch.setattr(transfer, "complete", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    # The whole (one-message) batch failed: Powertools raises so Lambda returns it to the queue.
    with pytest.raises(BatchProcessingError):
        transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext())
    assert get_job(transferring_job["id"])[1]["status"] == "running"

    monkeypatch.setattr(transfer, "complete", real_complete)
    second = transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext())

    assert second == {"batchItemFailures": []}
    job = get_job(transferring_job["id"])[1]
    assert job["status"] == "succeeded"
    assert job["output"]["sha256"] == hashlib.sha256((SAMPLES / "motion.mp4").read_bytes()).hexdigest()
    assert cdn_downloads(kie_cdn) == 1 and len(output_objects()) == 1


@pytest.mark.parametrize("content_type,body", [
    ("text/html", b"<html>expired</html>"),
    ("application/octet-stream", b"PK\x03\x04 this is a zip file, not a video"),
])
def test_non_video_output_fails_the_job(aws, kie_cdn, transferring_job, content_type, body):
    kie_cdn.output_content_type, kie_cdn.video_bytes = content_type, body
    assert transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext()) == {
        "batchItemFailures": []}
    job = get_job(transferring_job["id"])[1]
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_output"
    assert output_objects() == []


@pytest.mark.parametrize("content_type", ["video/mp4", "application/octet-stream", ""])
def test_an_empty_output_fails_the_job_at_once(aws, kie_cdn, transferring_job, content_type):
    """0 bytes is final, not a transient fault: no retries, no re-enqueue until the deadline."""
    kie_cdn.output_content_type, kie_cdn.video_bytes = content_type, b""

    result = transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext())

    assert result == {"batchItemFailures": []}  # the message is settled, not retried
    job = get_job(transferring_job["id"])[1]
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_output"
    assert job["error"]["message"] == "The provider returned an empty file."
    assert cdn_downloads(kie_cdn) == 1 and output_objects() == []
    # A duplicate delivery of the message does nothing more.
    assert transfer_handler.lambda_handler(sqs_event(transferring_job["id"]), FakeContext()) == {
        "batchItemFailures": []}
    assert cdn_downloads(kie_cdn) == 1


def test_canceled_or_finished_jobs_are_skipped(aws, kie_cdn):
    _, job = post_job(sample_request())  # queued, never succeeded at the provider
    assert transfer_handler.lambda_handler(sqs_event(job["id"]), FakeContext()) == {"batchItemFailures": []}
    assert cdn_downloads(kie_cdn) == 0


def test_stream_upload_holds_a_bounded_number_of_parts(aws, monkeypatch):
    """Bounded memory: parts go out as soon as they fill, at most PARTS_IN_FLIGHT at once;
    the source is read lazily (never more than that many parts ahead)."""
    from motionrelay.infra import blobs as storage
    from motionrelay.infra.aws import client

    part, chunk, total = 5 * 1024 * 1024, 256 * 1024, 23 * 1024 * 1024
    produced = {"bytes": 0}
    sent_parts: list[tuple[int, int]] = []  # (part size, bytes produced when it was sent)
    s3 = client("s3")
    real_upload_part = s3.upload_part

    def spy_upload_part(**kwargs):
        sent_parts.append((len(kwargs["Body"]), produced["bytes"]))
        return real_upload_part(**kwargs)

    monkeypatch.setattr(s3, "upload_part", spy_upload_part)

    def source():
        data = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * (chunk - 12)
        while produced["bytes"] < total:
            produced["bytes"] += len(data)
            yield data

    stored = storage.stream_upload("outputs/big.mp4", source(), content_type="video/mp4",
                                   max_bytes=total * 2, part_size=part)

    assert stored.size_bytes == produced["bytes"]
    assert len(sent_parts) == 5
    for index, (size, produced_then) in enumerate(sent_parts[:-1]):
        assert size <= part + chunk
        assert produced_then <= (index + 1 + storage.PARTS_IN_FLIGHT) * (part + chunk)  # never far ahead
