# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The private attributes of MMEngine's Runner this package reads or sets.

MMEngine 0.10.x keeps the ``resume`` and ``load_from`` settings of a Runner
in ``_resume`` / ``_load_from`` and has no public accessor for them. Every
use in mmreid_usl goes through these three functions, so a new MMEngine
version is adapted here. (The other private names touched are the two
``CheckpointHook`` methods :class:`~.hook.WorkDirCheckpointHook` overrides,
each commented there.)
"""
from typing import Optional


def is_resuming(runner) -> bool:
    """Whether the runner resumes (``resume=True``), not just loads."""
    return bool(getattr(runner, '_resume', False))  # mmengine 0.10.x


def load_from_of(runner) -> Optional[str]:
    """The checkpoint the runner will load or resume from, if any."""
    return getattr(runner, '_load_from', None)  # mmengine 0.10.x


def set_load_from(runner, path: str) -> None:
    """Make the runner resume from ``path`` (read in ``load_or_resume``)."""
    runner._load_from = path  # mmengine 0.10.x


def load_state_into_model(model, checkpoint: dict) -> None:
    """Load a read checkpoint into ``model`` non-strictly, as MMEngine does
    (``module.`` prefixes dropped, ``_load_from_state_dict`` hooks run).
    MMEngine 0.10.x has no public function for a checkpoint already read:
    the public ``load_checkpoint`` would read the file a second time."""
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    _load_checkpoint_to_model(model, checkpoint)  # mmengine 0.10.x
