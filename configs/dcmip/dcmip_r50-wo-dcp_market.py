# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation without the discrepant cluster proxies: one proxy per cluster with
# the batch-hard update (Cluster Contrast's Eq. 2; with one proxy type L_DCP is
# Cluster Contrast's ClusterNCE) plus the instance proxies. The choice of the
# 'hard' proxy as the uni-proxy baseline is ours; Cluster Contrast's code
# default is `--cfg-options "model.dcp_memory.update_modes=[momentum]"`.
_base_ = ['./dcmip_r50_market.py']

model = dict(dcp_memory=dict(update_modes=('hard', )))
