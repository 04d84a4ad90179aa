# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Strip a training checkpoint down to the weights needed for inference.

Usage::

    python tools/model_converters/publish_model.py IN.pth OUT.pth

As mmpretrain's ``publish_model.py``: the optimizer, parameter-scheduler and
message-hub states are dropped, and the file is renamed
``OUT_<YYYYMMDD>-<sha256[:8]>.pth``. The state dict also loses what only
training needs and what is rebuilt at every re-clustering: the cluster
memory (``memory.*``), ICE's camera-proxy memory (``proxy_memory.*``), the
``pseudo_labels`` buffer and ``num_clusterings``. Encoders (including ICE's
momentum encoder, used for testing) are kept. The input is read with
``torch.load(weights_only=True)``, after
:func:`~mmreid_usl.engine.checkpointing.enable_weights_only_loading` has
allow-listed what MMEngine writes into a checkpoint (importing
``mmreid_usl`` registers nothing).
"""
import argparse
import datetime
import hashlib
import os
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log

from mmreid_usl.engine.checkpointing import enable_weights_only_loading

#: Top-level checkpoint entries dropped (training state only).
DROP_ENTRIES = ('optimizer', 'param_schedulers', 'message_hub')
#: State-dict key prefixes dropped (memories rebuilt at every clustering).
DROP_PREFIXES = ('memory.', 'proxy_memory.')
#: State-dict buffers dropped (pseudo-label bookkeeping).
DROP_KEYS = ('pseudo_labels', 'num_clusterings')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename')
    return parser.parse_args(argv)


def strip_state_dict(state_dict: dict) -> List[str]:
    """Remove the training-only entries in place; returns the removed keys.

    A key is removed if it starts with one of :data:`DROP_PREFIXES` or its
    last component (after the final ``.``; a DDP ``module.`` prefix is
    allowed) is one of :data:`DROP_KEYS`.
    """
    removed = []
    for key in list(state_dict):
        bare = key[len('module.'):] if key.startswith('module.') else key
        if bare.startswith(DROP_PREFIXES) or bare.rsplit('.',
                                                         1)[-1] in DROP_KEYS:
            del state_dict[key]
            removed.append(key)
    return removed


def process_checkpoint(in_file: str, out_file: str) -> str:
    """Strip ``in_file``, save it and return the final file name."""
    enable_weights_only_loading()  # numpy / MMEngine objects of the meta
    checkpoint = torch.load(in_file, map_location='cpu', weights_only=True)
    for entry in DROP_ENTRIES:
        checkpoint.pop(entry, None)
    if 'state_dict' not in checkpoint:
        # a bare state dict
        checkpoint = dict(state_dict=checkpoint)
    removed = strip_state_dict(checkpoint['state_dict'])
    if removed:
        print_log(f'Removed {len(removed)} training-only entries: '
                  f"{', '.join(removed)}")
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(checkpoint, out_file)
    with open(out_file, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    stem = out_file[:-len('.pth')] if out_file.endswith('.pth') else out_file
    date = datetime.datetime.now().strftime('%Y%m%d')
    final_file = f'{stem}_{date}-{sha[:8]}.pth'
    os.replace(out_file, final_file)
    print_log(f'The published model is saved at {final_file}.')
    return final_file


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    process_checkpoint(args.in_file, args.out_file)


if __name__ == '__main__':
    main()
