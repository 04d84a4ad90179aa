# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The Runner of mmreid_usl: MMEngine's, with a global training batch."""
from typing import Dict, Optional, Union

from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmreid_usl.registry import RUNNERS
from mmreid_usl.utils.global_batch import resolve_global_batch
from mmreid_usl.utils.misc import get_ori_model


@RUNNERS.register_module()
class ReIDRunner(Runner):
    """:class:`mmengine.runner.Runner` that understands ``global_batch_size``.

    A dataloader config with ``global_batch_size`` (the batch of one
    optimiser step over all processes) is split over the processes when the
    dataloader is built (:func:`resolve_global_batch`), so ``python
    tools/train.py CONFIG`` on one process and ``bash tools/dist_train.sh
    CONFIG 4`` train the same global P x K batch for the same number of
    iterations; with the model's ``bn_group_size`` they also normalise with
    the same BatchNorm groups. Everything else is MMEngine's Runner. Configs
    select it with ``runner_type = 'ReIDRunner'`` (``default_runtime.py``).
    """

    def build_dataloader(self,
                         dataloader: Union[DataLoader, Dict],
                         seed: Optional[int] = None,
                         diff_rank_seed: bool = False) -> DataLoader:
        """Resolve ``global_batch_size``, then build as MMEngine does."""
        if isinstance(dataloader, dict) and \
                dataloader.get('global_batch_size') is not None:
            model = get_ori_model(self.model) if hasattr(self,
                                                         'model') else None
            dataloader, msg = resolve_global_batch(
                dict(dataloader), get_world_size(),
                getattr(model, 'bn_group_size', None))
            print_log(msg, logger='current')
        elif isinstance(dataloader, dict):
            dataloader = dict(dataloader)
            dataloader.pop('global_batch_size', None)
        return Runner.build_dataloader(
            dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
