"""An rq callback with a visible effect: it leaves a file named after the job in CALLBACK_PROBE_DIR."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def touch(job: Any, connection: Any, *args: Any) -> None:
    Path(os.environ["CALLBACK_PROBE_DIR"], job.id).touch()
