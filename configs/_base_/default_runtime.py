# Copyright (c) mmreid_usl contributors. All rights reserved.
default_scope = 'mmreid_usl'
# MMEngine's Runner that also splits a dataloader's global_batch_size over
# the processes (the same run on 1 or N GPUs)
runner_type = 'ReIDRunner'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the last checkpoints (resume) and the best one by test mAP, which
    # is how every official repo selects its reported model
    # (docs/algorithms/common.md)
    # CheckpointHook confined to the work dir: relative last_checkpoint,
    # auto-resume from the newest readable epoch_N.pth of the work dir, no
    # deletion outside it; the config's lr wins over a resumed one
    checkpoint=dict(
        type='WorkDirCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='auto',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # every random stream of epoch N derives from (seed, N): resuming from
    # epoch_N.pth is bit-exact
    random_state=dict(type='RandomStateHook'),
    # DDP keeps per-rank BN running statistics (broadcast_buffers=False);
    # average them after every epoch so all ranks cluster and evaluate the
    # same model (a no-op on one process)
    sync_buffers=dict(type='SyncNormBuffersHook'),
)
# A NaN/inf loss stops training with a clear error before the optimiser step
# (BaseUSLReID.parse_losses).

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # re-clustering MSMT17 on rank 0 takes minutes; other ranks wait in the
    # broadcast
    dist_cfg=dict(backend='nccl', timeout=7200),
)

visualizer = dict(
    type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])

# pseudo-label statistics change once per epoch: log the current value
log_processor = dict(
    window_size=10,
    by_epoch=True,
    custom_cfg=[
        dict(data_src=f'pseudo_label/{key}', method_name='current')
        for key in ('num_clusters', 'num_outliers')
    ])
# plain validation / test loops; algorithms with a momentum encoder set
# val_cfg = dict(type='MomentumValLoop') in their model base
val_cfg = dict()
test_cfg = dict()

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=1, deterministic=False)
