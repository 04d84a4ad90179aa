# Copyright (c) mmreid_usl contributors. All rights reserved.
# A zero-download domain-adaptation pair: synthetic pedestrians of domain A
# (source, the quick start's dataset: 1,049 labelled training images / 100
# ids) -> domain B (target: SyntheticPedestrians(generator_cfg=
# dict(domain='b')), 1,052 unlabelled training images / 100 other ids, raw
# ids 5001...; tested on the query / gallery of its 50 test ids, 169 / 329).
# Domain B has its own
# identities, clothing palette (muted mid-tones), cameras (stronger gain and
# colour-cast differences), outdoor backgrounds with bands and a ground
# strip, haze and more blur (mmreid_usl/datasets/synthetic_renderer.py).
# Both are generated on first use into ~/.cache/mmreid_usl (or
# $MMREID_USL_CACHE). Stages 2 + 3 as ../recipes/gds_uda_pair.py at 64x32,
# batch 32 = 8 pseudo-ids x 4 (one process); one epoch = #clusters x 4
# samples, outliers excluded (Theory's; floor(#clusters x 4 / 32) batches).
_base_ = ['../recipes/gds_uda_pair.py']

__src = dict(type='SyntheticPedestrians', data_root=None)
__tgt = dict(
    type='SyntheticPedestrians',
    data_root=None,
    generator_cfg=dict(domain='b'))
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(32, 64),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(64, 32), padding=4),
    dict(type='ReIDRandomErasing', erase_prob=0.5, max_area_ratio=0.2),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(32, 64),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]
__test_loader = dict(batch_size=64, num_workers=0)
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(__tgt, pipeline=__train_pipeline))
cluster_dataloader = dict(
    **__test_loader, dataset=dict(__tgt, pipeline=__test_pipeline))
default_hooks = dict(
    pseudo_label=dict(
        reference_dataloader=dict(
            **__test_loader, dataset=dict(__src,
                                          pipeline=__test_pipeline))))
val_dataloader = dict(
    **__test_loader, dataset=dict(__tgt, pipeline=__test_pipeline))
test_dataloader = val_dataloader
