"""Wire-faithful simulator of the providers' HTTP APIs, for the local stack and tests.

Each provider lives in its own module written from that provider's documentation
(`kie.py`, ...); they share the HTTP server (`server.py`), the job simulation and timing
(`jobs.py`), callback delivery (`delivery.py`) and the MP4 renderer (`render.py`).
Nothing here imports the `motionrelay` package: the sandbox is the other side of the wire.

    sb = Sandbox(api_keys={"kie": "sandbox-kie-key"}, kie_hmac_key="whk-secret").start()
    sb.base_url("kie")   # -> MOTIONRELAY_KIE_BASE_URL
    sb.configure("kie", state_seconds=0.1, fail_task="boom")
    sb.stop()
"""

from .render import MediaError, render_motion_video
from .server import PROVIDER_CLASSES, Sandbox

__all__ = ["PROVIDER_CLASSES", "MediaError", "Sandbox", "render_motion_video"]
