# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The sampler's camera strategies are registered objects."""
from unittest import mock

import numpy as np
import pytest

from mmreid_usl.datasets.samplers import (BaseCameraStrategy, IgnoreCameras,
                                          MoreCamera, PreferOtherCamera,
                                          PseudoIdentitySampler,
                                          build_camera_strategy)
from mmreid_usl.registry import CAMERA_STRATEGIES

MODULE = 'mmreid_usl.datasets.samplers.pseudo_identity_sampler'


class FakeDataset:
    """60 samples; cluster c = i // 6 spread over cameras i % 3."""

    def __init__(self, n=60):
        self.camids = np.arange(n) % 3

    def __len__(self):
        return len(self.camids)

    def get_camids(self):
        return self.camids.copy()


def make(**kwargs):
    with mock.patch(f'{MODULE}.get_dist_info', return_value=(0, 1)):
        sampler = PseudoIdentitySampler(FakeDataset(), seed=0, **kwargs)
    sampler.set_labels(np.arange(60) // 6)
    return sampler


def test_config_names_are_registry_keys():
    assert CAMERA_STRATEGIES.get('prefer_other') is PreferOtherCamera
    assert CAMERA_STRATEGIES.get('more_camera') is MoreCamera
    assert CAMERA_STRATEGIES.get('ignore') is IgnoreCameras
    assert isinstance(make(camera_mode='ignore').block_strategy,
                      IgnoreCameras)
    # 'ignore' needs no camera ids, the camera-aware ones read them
    assert make(camera_mode='ignore').camids is None
    assert make(camera_mode='more_camera').camids is not None


@pytest.mark.parametrize('mode', ['prefer_other', 'more_camera', 'ignore'])
def test_name_dict_and_instance_draw_the_same(mode):
    by_name = list(make(camera_mode=mode, samples_per_epoch=40))
    by_dict = list(make(camera_mode=dict(type=mode), samples_per_epoch=40))
    by_obj = list(
        make(camera_mode=build_camera_strategy(mode), samples_per_epoch=40))
    assert by_name == by_dict == by_obj


def test_a_new_strategy_plugs_in_without_editing_the_sampler():
    calls = []

    @CAMERA_STRATEGIES.register_module('first_k_test_only', force=True)
    class FirstK(BaseCameraStrategy):

        def __call__(self, rng, members, cams, k):
            calls.append((members.copy(), cams.copy(), k))
            return members[:k].tolist()

    try:
        sampler = make(camera_mode='first_k_test_only', samples_per_epoch=40)
        idx = list(sampler)
    finally:
        CAMERA_STRATEGIES.module_dict.pop('first_k_test_only')
    assert len(idx) == 40
    members, cams, k = calls[0]
    assert k == 4 and np.array_equal(cams, members % 3)
    assert all(i % 6 < 4 for i in idx)  # the first four of each cluster


def test_unknown_name_lists_the_keys():
    with pytest.raises(ValueError, match='prefer_other'):
        build_camera_strategy('cams')
