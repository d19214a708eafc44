"""rq's settings module for ``rq worker --config worker.rq_config``.

Importing it validates Railyard's settings (exiting with one clear message per problem)
and configures logging, so the worker starts in the same shape as every other entry
point. The Redis URL is read here from REDIS_URL rather than passed with ``--url``, so a
password never appears in the process's arguments.
"""

import sys

from railyard.alert_config import AlertConfig
from railyard.errors import ConfigError
from railyard.logs import configure_logging
from railyard.settings import Settings
from worker.tuning import WorkerTuning

problems = []
for read in (Settings.from_env, AlertConfig.from_env, WorkerTuning.from_env):
    try:
        read()
    except ConfigError as exc:
        problems += exc.problems
if problems:
    print(f"railyard worker: {ConfigError(problems)}", file=sys.stderr)
    raise SystemExit(2)

_settings = Settings.from_env()
configure_logging(_settings)

REDIS_URL = _settings.redis_url
QUEUES = list(_settings.queues)
