# Copyright (c) mmreid_usl contributors. All rights reserved.
# Stage 1 of Theory / GDS: supervised training on the labelled source
# (Market-1501, 751 train ids). ID loss (label smoothing 0.1) on Theory's
# FC-BN-ReLU embedding after dropout 0.1 (classifier with bias) + batch-hard
# triplet (margin 0.5, Theory's) on pool5, P x K = 32 x 4, Adam 3e-4 / wd
# 5e-4 (x3 on the head and classifier, Theory's), x0.1 every 50 epochs, 150
# epochs (GDS supplement Sec. 3). Evaluated on Market-1501's test split; its
# direct transfer to a target: configs/gds/README.md. GDS on supervised ReID
# (supplement Table 4): supervised-gds-h_r50_msmt17.py
_base_ = [
    '../_base_/models/supervised_r50.py',
    '../_base_/datasets/market1501_gds-source.py',
    '../_base_/schedules/adam_150e_step50.py',
]

model = dict(num_classes=751)
