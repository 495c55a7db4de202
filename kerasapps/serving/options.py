"""The server's options, in one place: the command line, the Python API and the app all read them here.

Standard library only, so ``kerasapps serve --help`` answers without TensorFlow.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """The server's options and their defaults (``kerasapps serve`` and :func:`kerasapps.serve` take these)."""

    host: str = "127.0.0.1"  # loopback: there is no authentication
    port: int = 8501  # TF Serving's REST port
    max_request_bytes: int = 10 * 2**20
    request_timeout_s: float = 30.0
    batching: bool = False
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    poll_interval_s: float = 2.0
    max_workers: int | None = None

    def __post_init__(self):
        checks = {
            "max_request_bytes": self.max_request_bytes > 0,
            "request_timeout_s": self.request_timeout_s > 0,
            "max_batch_size": self.max_batch_size >= 1,
            "batch_timeout_ms": self.batch_timeout_ms >= 0,
            "poll_interval_s": self.poll_interval_s >= 0,
            "max_workers": self.max_workers is None or self.max_workers >= 1,
        }
        for option, ok in checks.items():
            if not ok:
                raise ValueError(f"Invalid {option}: {getattr(self, option)!r}")
