# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The Runner of mmreid_usl: MMEngine's, with a global training batch and
checkpoints that are never left half-written."""
from typing import Dict, Optional, Union

from mmengine.dist import get_world_size, master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmreid_usl.engine.checkpointing.atomic import (PARTIAL_SUFFIX,
                                                    save_atomically)
from mmreid_usl.engine.checkpointing.weights_only import \
    enable_weights_only_loading
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
    the same BatchNorm groups.

    Checkpoints on a local disk are written atomically
    (:meth:`save_checkpoint`): a run killed while saving leaves the previous
    ``epoch_N.pth`` files intact and never a truncated one under a
    checkpoint name, so ``--resume`` always finds a complete checkpoint.
    Everything else is MMEngine's Runner. Configs select it with
    ``runner_type = 'ReIDRunner'`` (``default_runtime.py``).
    """

    #: See :data:`mmreid_usl.engine.checkpointing.PARTIAL_SUFFIX`.
    PARTIAL_SUFFIX = PARTIAL_SUFFIX

    def __init__(self, *args, **kwargs) -> None:
        # the checkpoints it resumes from and the URL weights of the
        # models' init_cfg load weights-only (see engine/checkpointing)
        enable_weights_only_loading()
        super().__init__(*args, **kwargs)

    def runtime_env(self, env_cfg: dict) -> Dict[str, object]:
        """The "Runtime environment" lines of the start-up log.

        MMEngine's, corrected for what the run really uses: its
        ``GPU number: <world size>`` says 1 on a CPU run and its
        ``dist_cfg`` names ``nccl`` even when no process group is started.
        Here the device and the number of processes are given as such
        (``GPU number`` only on CUDA), and ``dist_cfg`` only for a
        distributed run, with the backend its process group actually uses
        (gloo for CPU processes, see :func:`setup_cpu_distributed`).

        Args:
            env_cfg (dict): The ``env_cfg`` of the config.

        Returns:
            dict: Ordered name -> value.
        """
        import torch.distributed as torch_dist
        from mmengine.device import get_device

        # MMEngine 0.10.x keeps these settings in private attributes of the
        # Runner (``_distributed``, ``_randomness_cfg``, ``_seed``,
        # ``_launcher``, ``_world_size``) and overrides ``_log_env`` below;
        # no public accessor exists.

        runtime_env: Dict[str, object] = dict(env_cfg)
        if self._distributed and torch_dist.is_initialized():
            runtime_env['dist_cfg'] = dict(
                env_cfg.get('dist_cfg') or {},
                backend=torch_dist.get_backend())
        else:
            runtime_env.pop('dist_cfg', None)  # no process group: unused
        runtime_env.update(self._randomness_cfg)
        runtime_env['seed'] = self._seed
        runtime_env['Distributed launcher'] = self._launcher
        runtime_env['Distributed training'] = self._distributed
        device = get_device()
        runtime_env['Device'] = device
        runtime_env['Processes'] = self._world_size
        if device == 'cuda':
            runtime_env['GPU number'] = self._world_size
        return runtime_env

    def _log_env(self, env_cfg: dict) -> None:
        """Log the environment as MMEngine does, with :meth:`runtime_env`."""
        from mmengine.utils.dl_utils import collect_env

        def lines(items: Dict[str, object]) -> str:
            return '\n    ' + '\n    '.join(f'{k}: {v}'
                                            for k, v in items.items())

        dash_line = '-' * 60
        self.logger.info('\n' + dash_line + '\nSystem environment:' +
                         lines(collect_env()) + '\n'
                         '\nRuntime environment:' +
                         lines(self.runtime_env(env_cfg)) + '\n' +
                         dash_line + '\n')
        if self.cfg._cfg_dict:
            self.logger.info(f'Config:\n{self.cfg.pretty_text}')

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """MMEngine's ``save_checkpoint``, atomic on a local disk.

        MMEngine writes the bytes straight to ``out_dir/filename``, so a
        run killed (time limit, OOM, Ctrl-C) during the write leaves a
        truncated checkpoint under the final name. Here a local checkpoint
        goes to ``filename + '.partial'`` first and is renamed with
        :func:`os.replace` (atomic on POSIX and Windows within one folder)
        once complete; a failed write removes the partial file and re-raises
        (:func:`~mmreid_usl.engine.checkpointing.atomic.save_atomically`).
        Remote backends (``backend_args`` / ``file_client_args`` naming one)
        are written as MMEngine does.
        """
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        local = file_client_args is None and isinstance(
            get_file_backend(out_dir, backend_args=backend_args),
            LocalBackend)
        if not local:
            Runner.save_checkpoint(self, out_dir, filename, **kwargs)
            return
        save_atomically(
            lambda name: Runner.save_checkpoint(self, out_dir, name, **kwargs),
            out_dir, filename)

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
