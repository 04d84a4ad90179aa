# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Register all modules of mmreid_usl into its registries."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package so that all modules are registered.

    Also enables weights-only loading of checkpoints
    (:func:`mmreid_usl.engine.checkpointing.enable_weights_only_loading`).

    Args:
        init_default_scope (bool): Also set the default scope to
            ``'mmreid_usl'`` so registries look here first. Defaults to True.
    """
    import mmreid_usl.clustering  # noqa: F401,F403
    import mmreid_usl.datasets  # noqa: F401,F403
    import mmreid_usl.engine  # noqa: F401,F403
    import mmreid_usl.evaluation  # noqa: F401,F403
    import mmreid_usl.models  # noqa: F401,F403
    from mmreid_usl.engine.checkpointing import enable_weights_only_loading

    # MMEngine's checkpoints load weights-only (torch >= 2.6) in scripts
    # that use the registries without the tools' setup_runtime()
    enable_weights_only_loading()

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('mmreid_usl')
    if never_created:
        DefaultScope.get_instance('mmreid_usl', scope_name='mmreid_usl')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmreid_usl':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmreid_usl", '
                      '`register_all_modules` will force the current '
                      'default scope to be "mmreid_usl".')
        new_instance_name = f'mmreid_usl-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmreid_usl')


def setup_cpu_distributed(cfg) -> None:
    """Let a launcher-started run use CPU processes (gloo) without CUDA.

    MMEngine's ``init_dist`` always calls ``torch.cuda.set_device`` and its
    DDP wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on a machine
    without a GPU. When ``cfg.launcher`` is not ``'none'`` and CUDA is absent,
    this initialises the gloo process group itself (the Runner then skips its
    own initialisation) and wraps the model with ``device_ids=None``.

    Args:
        cfg (Config): The full config; modified in place.
    """
    import datetime as _dt

    import torch
    import torch.distributed as torch_dist

    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        if cfg.launcher != 'pytorch':
            raise RuntimeError(
                f'launcher={cfg.launcher!r} without CUDA is not supported; '
                'use the pytorch launcher (tools/dist_train.sh) for CPU runs.')
        timeout = dist_cfg.get('timeout', 1800)
        torch_dist.init_process_group(
            backend='gloo', timeout=_dt.timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
