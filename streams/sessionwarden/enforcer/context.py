"""What the enforcer shell's parts share: made once by the loop, handed to each part whole
(the collaborators travel together instead of one constructor argument each)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sessionwarden.config.settings import Settings, TopicNames
from sessionwarden.enforcer.checkpoints import Checkpoints
from sessionwarden.enforcer.runtime import LoopStats, PartitionRuntime
from sessionwarden.ops.observer import EnforcerObserver
from sessionwarden.policy import Policy


@dataclass
class EnforcerContext:
    """``topics`` is the loop's own object (a benchmark renames its input after construction:
    every part reads the name at each use). ``parts`` are the owned input partitions, shared
    by the loop, the batch and the assignments. ``clock`` is wall-clock time, on purpose:
    deadlines are enforced in real time, even on silent partitions."""

    settings: Settings
    policy: Policy
    topics: TopicNames
    clock: Callable[[], float]
    metrics: EnforcerObserver = field(default_factory=EnforcerObserver)
    checkpoints: Checkpoints | None = None  # None: no local state
    parts: dict[int, PartitionRuntime] = field(default_factory=dict)
    stats: LoopStats = field(default_factory=LoopStats)
