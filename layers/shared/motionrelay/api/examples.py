"""Realistic example bodies for the OpenAPI document (Swagger UI's "Try it out" starts from them).

Plain dicts, no pydantic: `api/openapi.py` puts them on operations at cold start, `api/models.py`
on the schemas. tests/unit/test_openapi.py holds each one to its schema, and the JobCreate one
to the real parser."""

from __future__ import annotations

from typing import Any

_AT = "2026-11-21T15:18:12.799Z"
_JOB_ID = "job_1a1feafbe0f1a59667f568a140280b4"

JOB_CREATE: dict[str, Any] = {
    "image": "upload:475badcdceb3aaee64cf211646c242dd",
    "video": "https://media.example.com/motion/dance-8s.mp4",
    "character_orientation": "image",
    "quality": "std",
    "prompt": "The character dances in a sunlit studio, smooth camera",
    "keep_original_sound": True,
    "webhook_url": "https://hooks.example.com/motionrelay",
    "metadata": {"order_id": "ord_8812", "user": "u_193"},
}

_REQUEST = {
    "image": {"source": "upload", "upload_id": "upload:475badcdceb3aaee64cf211646c242dd",
              "content_type": "image/png", "size_bytes": 4391, "format": "png", "width": 720, "height": 1280},
    "video": {"source": "url", "url": "https://media.example.com/motion/dance-8s.mp4",
              "content_type": "video/mp4", "size_bytes": 84536, "format": "mp4", "width": 720,
              "height": 1280, "duration_seconds": 8.0, "has_audio": True},
    "character_orientation": "image", "quality": "std",
    "prompt": "The character dances in a sunlit studio, smooth camera", "negative_prompt": None,
    "keep_original_sound": True, "provider": None, "webhook_url": "https://hooks.example.com/motionrelay",
}

JOB: dict[str, Any] = {
    "id": _JOB_ID, "status": "succeeded", "stage": "succeeded", "provider": "kie",
    "provider_task_id": "task_kling-2.6_1765400000000", "progress": 100,
    "provider_reports_progress": False, "typical_run_seconds": [60.0, 180.0],
    "request": _REQUEST,
    "output": {"url": f"https://motionrelay-media.s3.amazonaws.com/outputs/{_JOB_ID}.mp4?X-Amz-Signature=...",
               "expires_at": "2026-11-21T16:20:02.000Z", "size_bytes": 172421,
               "sha256": "99e7af26a0cd7fd7c1b2e0a4f3d5c6b7a8e9f0d1c2b3a4958677889900aabbcc",
               "content_type": "video/mp4"},
    "error": None,
    "attempts": [{"provider": "novita", "outcome": "skipped", "reason": "novita does not offer quality 'std' "
                  "(only pro)", "at": _AT},
                 {"provider": "kie", "outcome": "submitted", "at": "2026-11-21T15:18:13.102Z"}],
    "metadata": {"order_id": "ord_8812", "user": "u_193"},
    "cost": {"credits": 55},
    "created_at": _AT, "updated_at": "2026-11-21T15:20:02.441Z", "completed_at": "2026-11-21T15:20:02.441Z",
}

UPLOAD_CREATE: dict[str, Any] = {"content_type": "video/mp4", "size_bytes": 48213344}
UPLOAD: dict[str, Any] = {"id": "upload:0a6ed8cbf56c8cf1f4436726d670c205",
                          "put_url": "https://motionrelay-media.s3.amazonaws.com/inputs/uploads/"
                                     "0a6ed8cbf56c8cf1f4436726d670c205.mp4?X-Amz-Signature=...",
                          "expires_at": "2026-11-21T16:18:11.000Z"}
WEBHOOK_SECRET: dict[str, Any] = {"secret": "whsec_y4DuPNvIvT43cCHfgj6JTQMEPeIH7KpQj5daQyhbZgU=",
                                  "created_at": "2026-11-21T15:18:11.495Z"}
PROVIDER_LIST: dict[str, Any] = {"providers": [{
    "name": "kie", "qualities": ["pro", "std"], "prompt": True, "negative_prompt": False,
    "sound_control": False, "max_prompt_chars": 2500, "progress": False, "callbacks": True,
    "max_image_bytes": 10485760, "max_video_bytes": 104857600, "min_video_seconds": 3.0,
    "max_video_seconds": {"image": 10.0, "video": 30.0}, "video_containers": ["mkv", "mov", "mp4"],
    "typical_run_seconds": [60.0, 180.0]}]}
ERROR: dict[str, Any] = {"error": {"code": "input_too_long", "message": "'video' is 14.2 s; with "
                                   "character_orientation 'image' the limit is 10 s. Trim it, or use "
                                   "character_orientation 'video' (up to 30 s).", "field": "video"}}

# By component name (the pydantic model's class name).
EXAMPLES: dict[str, dict[str, Any]] = {
    "JobCreate": JOB_CREATE, "Job": JOB, "JobPage": {"jobs": [JOB], "next_cursor": None},
    "UploadCreate": UPLOAD_CREATE, "Upload": UPLOAD, "WebhookSecret": WEBHOOK_SECRET,
    "ProviderList": PROVIDER_LIST, "ErrorBody": ERROR,
}
