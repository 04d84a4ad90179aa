# Copyright (c) mmreid_usl contributors. All rights reserved.
# The data recipe of a domain-adaptation pair, stages 2 + 3 of Theory / GDS
# (docs/algorithms/gds.md), without the datasets: a pair base
# (_base_/datasets/<source>2<target>_gds.py) inherits it and sets the
# target's `type` / `data_root` in the four loaders and the source's in the
# reference loader, by key.
# - train: the clustered target training images, P x K = 32 pseudo-ids x 4
#   (cameras ignored, as Theory's RandomIdentitySampler); one epoch = every
#   cluster once with K images, outliers excluded: #clusters x 4 samples,
#   floor(#clusters x 4 / 128) batches with drop_last (Theory's
#   RandomIdentitySampler + DataLoader(drop_last=True); ~15-22 batches for
#   500-700 clusters on Market), recomputed at every re-clustering
#   (samples_per_epoch='clusters'). The GDS supplement's wording ("traverse
#   all the target training samples", Sec. 3) is the switch
#   train_dataloader.sampler.samples_per_epoch='dataset': one pass over all
#   target images, outliers included (~5x the steps on Market);
#   the stage-1 augmentation of the GDS supplement (crop, flip, erasing with
#   maximum area 0.2; Theory's adaptation code has no crop), every image
#   resized with PIL bilinear as Theory's torchvision Resize;
# - clustering: the target training images without augmentation
#   (cluster_dataloader) and, as the reference bank of the source-aware
#   distance, the source training images (reference_dataloader of the
#   PseudoLabelHook, re-extracted with the current model at every
#   clustering);
# - val / test: the target test split.
# The pseudo-labelling recipe (pseudo_label/theory_source_jaccard.py, with the
# runtime) comes through this file: its reference loader is data, and
# mmengine does not merge two bases that both set `default_hooks`.
_base_ = ['../pseudo_label/theory_source_jaccard.py']

__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5, max_area_ratio=0.2),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(
        type='PseudoIdentitySampler',
        num_instances=4,
        samples_per_epoch='clusters',
        camera_mode='ignore'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(split='train', pipeline=__train_pipeline))

__test_loader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'))
cluster_dataloader = dict(
    **__test_loader,
    dataset=dict(split='train', pipeline=__test_pipeline))
default_hooks = dict(
    pseudo_label=dict(
        reference_dataloader=dict(
            **__test_loader,
            dataset=dict(split='train', pipeline=__test_pipeline))))
val_dataloader = dict(
    **__test_loader,
    dataset=dict(split='test', pipeline=__test_pipeline))
val_evaluator = dict(type='ReIDMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
