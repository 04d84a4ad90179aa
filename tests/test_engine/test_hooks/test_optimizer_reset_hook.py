# Copyright (c) mmreid_usl contributors. All rights reserved.
"""OptimizerResetHook: a new optimiser for a second stage, inside one run.

The reference is the two-stage procedure written out by hand: Adam + StepLR
for stage 1, then a NEW Adam + StepLR over the same parameters for stage 2
(as the unofficial DCMIP code does). The Runner with the hook and two
StepLR segments must end with the same parameters, also when resumed before
or after the switch.
"""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmreid_usl.engine.hooks import OptimizerResetHook
from mmreid_usl.engine.hooks.optimizer_reset_hook import reset_optim_wrapper
from mmreid_usl.utils import register_all_modules

LR, WD, SWITCH, EPOCHS, BATCH = 0.1, 0.01, 2, 4, 4
OPTIM = dict(optimizer=dict(type='Adam', lr=LR, weight_decay=WD))
SCHEDULE = [
    dict(type='StepLR', step_size=1, gamma=0.5, by_epoch=True, begin=0,
         end=SWITCH),
    dict(type='StepLR', step_size=1, gamma=0.5, by_epoch=True,
         begin=SWITCH, end=EPOCHS),
]


class _Data(Dataset):

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 3, generator=g)
        self.y = self.x @ torch.tensor([1., -2., 0.5]) + 0.3

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc = nn.Linear(3, 1)

    def forward(self, inputs, targets=None, mode='loss'):
        return dict(loss=((self.fc(inputs).squeeze(1) - targets)**2).mean())


class _Probe(Hook):
    """Optimiser state and lr at the start of every epoch (after the
    reset)."""

    priority = 'LOW'

    def __init__(self):
        self.seen = {}

    def before_train_epoch(self, runner):
        opt = runner.optim_wrapper.optimizer
        self.seen[runner.epoch] = (len(opt.state),
                                   [g['lr'] for g in opt.param_groups])


def _runner(work_dir, max_epochs=EPOCHS, reset=True, resume_from=None):
    hooks = [_Probe()]
    if reset:
        hooks.append(dict(type='OptimizerResetHook', epochs=[SWITCH]))
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        experiment_name='_'.join(work_dir.parts[-2:]),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=BATCH,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=copy.deepcopy(OPTIM),
        param_scheduler=copy.deepcopy(SCHEDULE),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='WorkDirCheckpointHook', interval=1)),
        custom_hooks=hooks,
        resume=resume_from is not None,
        load_from=resume_from,
        default_scope='mmreid_usl',
        log_level='WARNING',
        cfg=dict(optim_wrapper=copy.deepcopy(OPTIM)))


def _trained(runner):
    runner.train()
    state = runner.model.state_dict()
    return {k: v.detach().clone() for k, v in state.items()}


def _two_stages_by_hand():
    """Stage 1 and stage 2 each with a NEW Adam and StepLR."""
    model, data = _Toy(), _Data()
    for stage in range(2):
        opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WD)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        for _ in range(SWITCH):
            for i in range(0, len(data), BATCH):
                loss = model(data.x[i:i + BATCH], data.y[i:i + BATCH])['loss']
                loss.backward()
                opt.step()
                opt.zero_grad()
            sched.step()
    return model.state_dict()


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules(init_default_scope=False)


def test_a_new_adam_and_steplr_for_the_second_stage(tmp_path):
    runner = _runner(tmp_path / 'full')
    final = _trained(runner)
    probe = runner.hooks[[type(h) for h in runner.hooks].index(_Probe)]
    # stage 2 starts with no Adam moments and the config's lr
    assert probe.seen[SWITCH] == (0, [LR])
    assert probe.seen[SWITCH - 1][0] == 2  # moments of weight and bias
    assert probe.seen[SWITCH + 1] == (2, [pytest.approx(LR * 0.5)])
    # the lr of stage 1 decayed, the reset is not the schedule
    assert probe.seen[SWITCH - 1][1] == [pytest.approx(LR * 0.5)]
    expect = _two_stages_by_hand()
    for key, value in expect.items():
        torch.testing.assert_close(final[key], value, msg=key)
    # without the hook, Adam's moments and the decayed lr carry over
    plain = _trained(_runner(tmp_path / 'plain', reset=False))
    assert not torch.allclose(plain['fc.weight'], expect['fc.weight'])


@pytest.mark.parametrize('resume_epoch', [SWITCH, SWITCH + 1])
def test_resume_before_and_after_the_switch_is_exact(tmp_path, resume_epoch):
    full = _trained(_runner(tmp_path / 'full'))
    # epoch_N.pth = the state after N epochs: epoch_SWITCH.pth predates the
    # reset (it happens again when the resumed run starts epoch SWITCH),
    # epoch_{SWITCH+1}.pth holds the reset optimiser's state
    ckpt = str(tmp_path / 'full' / f'epoch_{resume_epoch}.pth')
    runner = _runner(tmp_path / 'resumed', resume_from=ckpt)
    resumed = _trained(runner)
    probe = runner.hooks[[type(h) for h in runner.hooks].index(_Probe)]
    assert min(probe.seen) == resume_epoch
    if resume_epoch == SWITCH:
        assert probe.seen[SWITCH] == (0, [LR])
    else:  # not reset again, the stage-2 state and lr were restored
        assert probe.seen[SWITCH + 1] == (2, [pytest.approx(LR * 0.5)])
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], msg=key)


def test_reset_keeps_the_objects_and_the_initial_values():
    params = [nn.Parameter(torch.ones(2))]
    opt = torch.optim.Adam(params, lr=LR)
    opt.param_groups[0]['initial_lr'] = 0.2  # e.g. after auto_scale_lr
    params[0].grad = torch.ones(2)
    opt.step()
    opt.param_groups[0]['lr'] = 0.01
    wrapper = OptimWrapper(opt)
    fresh = OptimWrapper(torch.optim.Adam(params, lr=LR))
    reset_optim_wrapper(wrapper, fresh)
    assert wrapper.optimizer is opt and len(opt.state) == 0
    assert opt.param_groups[0]['initial_lr'] == 0.2
    assert opt.param_groups[0]['lr'] == 0.2
    assert opt.param_groups[0]['params'][0] is params[0]
    with pytest.raises(ValueError, match='parameter groups'):
        reset_optim_wrapper(
            wrapper,
            OptimWrapper(
                torch.optim.Adam([{
                    'params': params
                }, {
                    'params': [nn.Parameter(torch.ones(1))]
                }])))


def test_arguments_are_checked():
    assert OptimizerResetHook(epochs=40).epochs == [40]
    for bad in ([], [0], [1.5], [True]):
        with pytest.raises(ValueError, match='epochs'):
            OptimizerResetHook(epochs=bad)
