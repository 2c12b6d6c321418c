"""When to ask a provider about a job again.

The providers' pages suggest polling every 1-2 s; a job runs 60-180 s, so that would be
~100 requests per job. Instead the next poll is planned from what the provider says (ETA,
progress) and, failing that, in proportion to how long the job has run (or with backoff when
that is unknown); the first poll waits for the typical shortest run; jitter spreads jobs
that were submitted together. A provider that calls back is polled only as a safety net,
after the typical run time has passed.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from motionrelay.domain.job import ProviderStatus

if TYPE_CHECKING:
    from motionrelay.domain.capabilities import Capabilities

MIN_DELAY_SECONDS = 10.0  # ETAs run short near the end; polling faster only adds requests
MAX_DELAY_SECONDS = 120.0
SAFETY_NET_MAX_SECONDS = 900.0
ETA_MARGIN_SECONDS = 5.0
BACKOFF_BASE_SECONDS = 20.0
BACKOFF_FACTOR = 1.5
# Without ETA or progress, the next poll comes after this fraction of the time the job has
# run so far (at least MIN_DELAY_SECONDS): the detection lag stays ~1/10 of the run time
# at 7-8 polls for a 2-minute job (bench/latency.py, bench/requests_per_job.py).
ELAPSED_FRACTION = 0.08


def _jitter(seconds: float, scale: float) -> float:
    # `scale` (MOTIONRELAY_POLL_TIME_SCALE) shrinks the whole schedule: the local stack's
    # sandbox jobs take seconds; 1.0 in AWS.
    return seconds * random.uniform(0.9, 1.1) * scale


def first_poll_delay(caps: Capabilities, *, callback_expected: bool, scale: float = 1.0) -> float:
    """Seconds from submit to the first poll."""
    shortest, longest = caps.typical_run_seconds
    if callback_expected:
        # The callback should arrive first; the poll only catches a lost one.
        return _jitter(longest + 60, scale)
    return _jitter(shortest, scale)


def next_poll_delay(status: ProviderStatus | None, poll_count: int, caps: Capabilities, *,
                    callback_expected: bool, running_for: float | None = None, scale: float = 1.0) -> float:
    """Seconds until the next poll of a job that is not finished.

    `status` is what the provider just said (None when the poll itself failed), `poll_count`
    how many polls were made so far, `running_for` seconds since the provider accepted it."""
    if callback_expected:
        return _jitter(min((caps.typical_run_seconds[1] + 60) * 2 ** max(0, poll_count - 1),
                           SAFETY_NET_MAX_SECONDS), scale)
    if status is not None and status.eta_seconds is not None and status.eta_seconds > 0:
        return _jitter(_clamp(status.eta_seconds + ETA_MARGIN_SECONDS), scale)
    if (status is not None and status.progress and 0 < status.progress < 100
            and running_for and running_for > 0):
        # Linear extrapolation: what remains takes as long per percent as what was done.
        remaining = running_for * (100 - status.progress) / status.progress
        return _jitter(_clamp(remaining), scale)
    if status is not None and running_for and running_for > 0:
        # `running_for` is measured on the (scaled) clock; the schedule is in real seconds.
        return _jitter(_clamp(ELAPSED_FRACTION * running_for / (scale or 1.0)), scale)
    return _jitter(_clamp(BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** max(0, poll_count - 1)), scale)


def _clamp(seconds: float) -> float:
    return max(MIN_DELAY_SECONDS, min(seconds, MAX_DELAY_SECONDS))
