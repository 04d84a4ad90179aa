# Copyright (c) mmreid_usl contributors. All rights reserved.
from .hooks import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .checkpointing import WorkDirCheckpointHook, setup_runtime  # noqa: F401
