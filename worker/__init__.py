"""The RQ worker Railyard runs as a Railway service (see Procfile)."""

from worker.rq_worker import RailyardWorker

__all__ = ["RailyardWorker"]
