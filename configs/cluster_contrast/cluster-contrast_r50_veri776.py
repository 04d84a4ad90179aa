# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, VeRi-776 (data/veri776/: image_train/,
# image_query/, image_test/; the dataset of
# configs/_base_/datasets/veri776_usl.py). The official README command:
# --iters 400 --momentum 0.1 --eps 0.6 --height 224 --width 224 (the
# default here); the paper: 224x224, best eps 0.7 (Table 7; set
# default_hooks.pseudo_label.labeler.clusterer.eps=0.7); its Table 2 figures
# (and those of cluster-contrast_r50-ibn_veri776.py): README.md.
_base_ = [
    '../_base_/models/cluster_contrast_r50.py',
    '../_base_/datasets/veri776_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]
