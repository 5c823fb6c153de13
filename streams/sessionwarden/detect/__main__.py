"""``python -m sessionwarden.detect``: the detect worker with settings from the environment."""

from __future__ import annotations

import sys

from sessionwarden.config.settings import load_settings
from sessionwarden.errors import SessionwardenError
from sessionwarden.ops.logs import bind_process, configure_logging
from sessionwarden.policy import default_policy, load_policy


def main() -> int:
    from sessionwarden.detect.app import run

    try:
        settings = load_settings()
        policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
        configure_logging(settings.logging.level, settings.logging.format)
        bind_process(service="detect")
        return run(settings, policy)
    except SessionwardenError as exc:
        print(f"sessionwarden detect: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
