"""The scheduler service: enqueues nightly backups and maintenance on rq-scheduler."""
