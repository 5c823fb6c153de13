"""The browser script names every revocation reason in words."""

from __future__ import annotations

import re
from typing import get_args

from sessionwarden.contracts.outputs import RevocationReason
from sessionwarden.sdk.push import script_source


def test_the_script_source_labels_every_revocation_reason() -> None:
    """An unlabelled reason would show only "ended" to the person whose session it was."""
    script = script_source().decode()
    block = re.search(r"var LABELS = \{(.*?)\};", script, re.S)
    assert block is not None
    labelled = set(re.findall(r"^\s*(\w+):", block.group(1), re.M))
    assert set(get_args(RevocationReason)) == labelled
