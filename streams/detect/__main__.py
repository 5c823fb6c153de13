"""``python -m streams.detect``: the detect worker with settings from the environment."""

from __future__ import annotations

import sys

from schemas.errors import SessionwardenError
from streams.logsetup import bind_process, configure_logging
from streams.policy import default_policy, load_policy
from streams.settings import load_settings


def main() -> int:
    from streams.detect.app import run

    try:
        settings = load_settings()
        policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
        configure_logging(settings.log_level, settings.log_format)
        bind_process(service="detect")
        return run(settings, policy)
    except SessionwardenError as exc:
        print(f"sessionwarden detect: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
