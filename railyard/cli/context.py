"""State shared by the commands of one ``railyard`` invocation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from railyard.logs import configure_logging
from railyard.settings import SECRET_VARIABLES, Settings, url_password


@dataclass
class CliContext:
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Settings from the environment, validated once; logging is configured with them."""
        if self._settings is None:
            self._settings = Settings.from_env()
            configure_logging(self._settings)
        return self._settings

    def known_secrets(self) -> list[str]:
        """Secrets to scrub from error output, even when settings failed to load."""
        found = [url_password(os.environ.get(name, "")) for name in ("REDIS_URL", "DATABASE_URL")]
        found += [os.environ.get(name) for name in SECRET_VARIABLES]
        return [s for s in found if s]
