# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Table 1: instance proxies (MIP) and global hard-negative mining
# from the 11th epoch, i.e. E_ins = 10 (0-based ins_start_epoch).
_base_ = ['./dcmip_r50_market.py']

model = dict(ins_start_epoch=10)
