"""The worker's start-up check of Railway's draining window against the longest job."""

from __future__ import annotations

import pytest

from railyard.core import registry
from worker.drain import draining_problem

LONGEST = registry.LONGEST_TIMEOUT_S
ON_RAILWAY = {"RAILWAY_ENVIRONMENT_NAME": "production"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),  # not on Railway: nothing to say
        ({"RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "5"}, None),
        ({**ON_RAILWAY, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": str(LONGEST + 60)}, None),
        ({**ON_RAILWAY, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "86400"}, None),
        ({**ON_RAILWAY}, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS is not set, so a redeploy kills a running job"),
        ({**ON_RAILWAY, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": " "}, "is not set"),
        ({**ON_RAILWAY, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": "3h"}, "='3h' is not a whole number of seconds"),
        (
            {**ON_RAILWAY, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS": str(LONGEST)},
            f"={LONGEST} is shorter than the longest job ({LONGEST} s) plus 60 s",
        ),
    ],
)
def test_draining_problem(environ: dict[str, str], expected: str | None) -> None:
    problem = draining_problem(environ, LONGEST)
    if expected is None:
        assert None is problem
    else:
        assert problem is not None and expected in problem
        assert f"RAILWAY_DEPLOYMENT_DRAINING_SECONDS={LONGEST + 60} on this worker" in problem
