"""The public HTTP API's request and response bodies, declared once, as pydantic models.

They are what `GET /v1/openapi.json` publishes (components.schemas, under the class names),
and what the tests hold real responses to. They are imported only when the OpenAPI document
is built (motionrelay.api.openapi): pydantic would add ~70 ms to every API cold start otherwise.

Request bodies are still parsed at run time by `validation.parse_job_request` and
`uploads.parse_upload_request`, which word each refusal with a stable code and the field
to change. The limits and choices below are taken from those modules' constants, so the
two cannot drift apart; tests/unit/test_openapi.py holds the models to the parsers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from motionrelay.api.examples import EXAMPLES
from motionrelay.jobs import MAX_PAGE, STAGES, STATUSES
from motionrelay.settings import PROVIDERS
from motionrelay.uploads import CONTENT_TYPES
from motionrelay.validation import MAX_METADATA_BYTES, MAX_PROMPT_CHARS, ORIENTATIONS, QUALITIES

# Literal[...] of a tuple is the Literal of its items: the enums come from the code's own tuples.
Provider = Literal[PROVIDERS]  # type: ignore[valid-type]
Orientation = Literal[ORIENTATIONS]  # type: ignore[valid-type]
Quality = Literal[QUALITIES]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]
Stage = Literal[tuple(dict.fromkeys(STAGES.values()))]  # type: ignore[misc]
UploadContentType = Literal[tuple(CONTENT_TYPES)]  # type: ignore[misc]

MAX_WEBHOOK_URL_CHARS = 2048  # validation.parse_job_request's limit for webhook_url


# --------------------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case code, e.g. invalid_request, unauthorized, not_found, "
                                  "job_finished, idempotency_conflict, input_too_large, unsupported_media, "
                                  "input_too_long, forbidden_url, provider_cannot_serve, internal_error.")
    message: str = Field(description="What went wrong and what to change, for people.")
    field: str | None = Field(None, description="The request field (or header) to change, when one is "
                                                "at fault; absent otherwise.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    error: ErrorDetail


# --------------------------------------------------------------------------- requests


class JobCreate(BaseModel):
    """`POST /v1/jobs`. Unknown fields are refused (400 invalid_request naming the field)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLES["JobCreate"]]})

    image: str = Field(min_length=1, description="The character image: an `https://` URL, a "
                       "`data:image/...;base64,...` URI, or an `upload:<id>` from POST /v1/uploads. "
                       "JPEG or PNG, each side >= 300 px, aspect ratio within 1:2.5..2.5:1, <= 10 MB.")
    video: str = Field(min_length=1, description="The motion reference video: an `https://` URL, a "
                       "`data:video/...;base64,...` URI, or an `upload:<id>`. MP4 or MOV, >= 3 s.")
    character_orientation: Orientation = Field(
        "image", description="`image`: the character keeps the image's orientation, video <= 10 s; "
                             "`video`: it follows the video's, video <= 30 s.")
    quality: Quality = Field("pro", description="`std` (720p) or `pro` (1080p).")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    keep_original_sound: bool = Field(True, description="Keep the reference video's audio.")
    provider: Provider | None = Field(None, description="Pin one provider; omit to let routing choose "
                                                        "(and fail over).")
    webhook_url: str | None = Field(None, max_length=MAX_WEBHOOK_URL_CHARS, pattern="^https://",
                                    description="Notified (signed, Standard Webhooks) when the job ends. "
                                                "Public https only (the local stack also takes "
                                                "http://127.0.0.1, e.g. `motionrelay listen`).")
    metadata: dict[str, Any] | None = Field(
        None, description=f"Echoed back on the job (`{{}}` when omitted); at most {MAX_METADATA_BYTES} "
                          "bytes as JSON.")


class UploadCreate(BaseModel):
    """`POST /v1/uploads`: the file's type and exact size (the PUT URL signs both)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLES["UploadCreate"]]})

    content_type: UploadContentType
    size_bytes: int = Field(gt=0, description="Exact size in bytes; at most the largest input any "
                                              "enabled provider accepts (413 otherwise).")


# --------------------------------------------------------------------------- responses


class InputDescription(BaseModel):
    """One input as kept on the job: where it came from and what the probe found; never the bytes."""

    model_config = ConfigDict(extra="allow")

    source: Literal["data_uri", "url", "upload"]
    url: str | None = None
    upload_id: str | None = None
    content_type: str
    size_bytes: int
    sha256: str | None = None
    format: str
    width: int
    height: int
    duration_seconds: float | None = None
    has_audio: bool | None = None


class NormalizedRequest(BaseModel):
    """The request as accepted, defaults filled in, inputs described instead of included."""

    model_config = ConfigDict(extra="allow")

    image: InputDescription
    video: InputDescription
    character_orientation: Orientation
    quality: Quality
    prompt: str | None
    negative_prompt: str | None
    keep_original_sound: bool
    provider: Provider | None
    webhook_url: str | None


class JobOutput(BaseModel):
    url: str = Field(description="Presigned GET of the finished video in this deployment's bucket.")
    expires_at: datetime = Field(description="When `url` stops working; read the job again for a new one.")
    size_bytes: int
    sha256: str
    content_type: str


class JobError(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class Attempt(BaseModel):
    """One step of routing and placement: a provider skipped, tried, or submitted to."""

    model_config = ConfigDict(extra="allow")

    provider: Provider | None
    outcome: str = Field(description="submitted, skipped, cooldown, retryable_error (refused: nothing "
                                     "was accepted), rejected (final), ambiguous (sent without a definite "
                                     "answer: the provider may have accepted, and charged for, it), surplus "
                                     "(accepted after the placement had ended: not collected), deferred, "
                                     "no_provider_available.")
    at: datetime
    reason: str | None = None
    code: str | None = None
    message: str | None = None


class Job(BaseModel):
    """A job: the body of 202 on create, of GET /v1/jobs/{id}, of cancel and of notifications."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["Job"]]})

    id: str
    status: Status
    stage: Stage | None = Field(None, description="Finer than `status`: `placing` (accepted, being placed "
                                "with a provider), `provider_queued` (in the provider's queue), "
                                "`provider_running`, `transferring` (copying the video into the bucket), "
                                "then the terminal status.")
    provider_reports_progress: bool | None = Field(
        None, description="Whether `provider` reports progress at all; when false, `progress` stays null "
                          "until the end: compare the time since `submitted` with `typical_run_seconds`.")
    typical_run_seconds: list[float] | None = Field(
        None, min_length=2, max_length=2, description="[low, high]: how long a job usually runs at "
                                                      "`provider` in this deployment.")
    provider: Provider | None
    provider_task_id: str | None
    progress: int | None = Field(ge=0, le=100)
    request: NormalizedRequest
    output: JobOutput | None
    error: JobError | None
    attempts: list[Attempt]
    metadata: dict[str, Any]
    cost: dict[str, Any] | None = Field(description="What the provider reported the job cost, if it did.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class JobPage(BaseModel):
    jobs: list[Job] = Field(max_length=MAX_PAGE, description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class Upload(BaseModel):
    id: str = Field(pattern="^upload:[0-9a-f]{32}$",
                    description="Use as `image` or `video` in POST /v1/jobs.")
    put_url: str = Field(description="Presigned S3 PUT; send the file with the declared Content-Type "
                                     "and exact Content-Length.")
    expires_at: datetime = Field(description="When `put_url` stops working.")


class WebhookSecret(BaseModel):
    secret: str = Field(pattern="^whsec_", description="Standard Webhooks signing secret.")
    created_at: datetime
    previous_expires_at: datetime | None = Field(
        None, description="Present during the grace period after a rotation: until then notifications "
                          "are signed with the previous secret too.")


class ProviderInfo(BaseModel):
    """A provider this deployment can serve, and what it can do (from its adapter)."""

    name: Provider
    qualities: list[Quality]
    prompt: bool
    negative_prompt: bool
    sound_control: bool = Field(description="Whether `keep_original_sound: false` can be served.")
    max_prompt_chars: int
    progress: bool = Field(description="Whether it reports progress while running.")
    callbacks: bool = Field(description="Whether it calls back (else it is polled).")
    max_image_bytes: int
    max_video_bytes: int
    min_video_seconds: float
    max_video_seconds: dict[Orientation, float] = Field(description="Longest video per "
                                                                    "`character_orientation`.")
    video_containers: list[str]
    typical_run_seconds: list[float] = Field(min_length=2, max_length=2)


class ProviderList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLES["ProviderList"]]})

    providers: list[ProviderInfo] = Field(description="In routing order: routed and with credentials.")


REQUEST_MODELS: tuple[type[BaseModel], ...] = (JobCreate, UploadCreate)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (Job, JobPage, Upload, WebhookSecret, ProviderList, ErrorBody)
