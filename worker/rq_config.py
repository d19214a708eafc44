"""rq's settings module for ``rq worker --config worker.rq_config``.

Importing it validates every Railyard setting (jobs.environment), exiting with one clear
message per problem, and configures logging, so the worker starts in the same shape as
every other entry point. The Redis URL is read here from REDIS_URL rather than passed with ``--url``, so a
password never appears in the process's arguments.
"""

import sys

from jobs.environment import environment_problems
from railyard.core.errors import ConfigError
from railyard.core.logs import configure_logging
from railyard.core.settings import Settings

problems = environment_problems()
if problems:
    print(f"railyard worker: {ConfigError(problems)}", file=sys.stderr)
    raise SystemExit(2)

_settings = Settings.from_env()
configure_logging(_settings)

REDIS_URL = _settings.redis_url
QUEUES = list(_settings.queues)
