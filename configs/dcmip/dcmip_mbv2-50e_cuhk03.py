# Copyright (c) mmreid_usl contributors. All rights reserved.
# dcmip_mbv2_cuhk03.py with the paper's schedule LENGTH: 50 epochs x 200
# iterations, Adam 3.5e-4 x0.1 every 20 epochs, instance proxies from epoch
# E_ins = 20 and the paper's EMA alpha = 0.999 (mmengine momentum 0.001);
# data, input size, batch 64 and clustering as the CPU config. A GPU run
# (~20x the CPU budget), docs/benchmarks.md.
_base_ = ['./dcmip_mbv2_cuhk03.py']

model = dict(ins_start_epoch=20, momentum=0.001)
train_dataloader = dict(sampler=dict(samples_per_epoch=200 * 64))
param_scheduler = [
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True)
]
train_cfg = dict(max_epochs=50, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
