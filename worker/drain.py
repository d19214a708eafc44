"""Railway's draining window against the longest job: is a running job safe from a redeploy?

On a redeploy Railway sends SIGTERM (rq's warm shutdown lets the running job finish) and
SIGKILLs the old deployment ``RAILWAY_DEPLOYMENT_DRAINING_SECONDS`` later, a few seconds
when the variable is not set. Railway no longer reads ``drainingSeconds`` from
railway.toml, so a worker that relied on it now loses every job a deploy catches. The
worker says so once at start; elsewhere than on Railway this says nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

DRAINING_VARIABLE = "RAILWAY_DEPLOYMENT_DRAINING_SECONDS"
ON_RAILWAY_VARIABLE = "RAILWAY_ENVIRONMENT_NAME"  # Railway sets it in every deployment
MARGIN_S = 60  # the job's own clean-up after its timeout, and rq's shutdown


def draining_problem(environ: Mapping[str, str], longest_timeout_s: int) -> str | None:
    """Why a redeploy could kill a running job here, or None when the window covers the longest job."""
    if not environ.get(ON_RAILWAY_VARIABLE):
        return None
    needed = longest_timeout_s + MARGIN_S
    fix = f"set the service variable {DRAINING_VARIABLE}={needed} on this worker (README, Deploy on Railway)"
    raw = environ.get(DRAINING_VARIABLE, "").strip()
    if not raw:
        return f"{DRAINING_VARIABLE} is not set, so a redeploy kills a running job within seconds; {fix}"
    try:
        seconds = int(raw)
    except ValueError:
        return f"{DRAINING_VARIABLE}={raw[:20]!r} is not a whole number of seconds; {fix}"
    if seconds < needed:
        return (
            f"{DRAINING_VARIABLE}={seconds} is shorter than the longest job ({longest_timeout_s} s) plus "
            f"{MARGIN_S} s: a redeploy can kill a running job; {fix}"
        )
    return None
