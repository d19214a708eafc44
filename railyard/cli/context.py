"""State shared by the commands of one ``railyard`` invocation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from railyard.core.settings import Settings


@dataclass
class CliContext:
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Settings from the environment, validated once; logging is configured with them."""
        if self._settings is None:
            # Imported here, by the commands that need settings: `railyard --help` loads none of it.
            from jobs.environment import validate_environment
            from railyard.core.logs import configure_logging
            from railyard.core.settings import Settings

            validate_environment()  # every setting, every problem at once, before any command does anything
            self._settings = Settings.from_env()
            configure_logging(self._settings)
        return self._settings

    def known_secrets(self) -> list[str]:
        """Secrets to scrub from error output, even when settings failed to load."""
        from railyard.core.redact import environment_secrets

        return list(environment_secrets(os.environ))
