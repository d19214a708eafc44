"""rq's settings module for ``rq worker --config worker.rq_config``.

Importing it validates Railyard's settings (exiting with one clear message per problem)
and configures logging, so the worker starts in the same shape as every other entry
point. The Redis URL is read here from REDIS_URL rather than passed with ``--url``, so a
password never appears in the process's arguments.
"""

import sys

from railyard.errors import ConfigError
from railyard.logs import configure_logging
from railyard.settings import Settings

try:
    _settings = Settings.from_env()
except ConfigError as exc:
    print(f"railyard worker: {exc}", file=sys.stderr)
    raise SystemExit(2) from exc

configure_logging(_settings)

REDIS_URL = _settings.redis_url
QUEUES = list(_settings.queues)
