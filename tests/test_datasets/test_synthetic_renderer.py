# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
from PIL import Image

from mmreid_usl.datasets.synthetic_renderer import (
    DEFAULT_GENERATOR_CFG, SyntheticGeneratorConfig,
    generate_synthetic_pedestrians)


def test_config_defaults_in_one_place():
    cfg = SyntheticGeneratorConfig.from_dict(None)
    assert cfg == SyntheticGeneratorConfig()
    assert cfg.to_dict() == DEFAULT_GENERATOR_CFG
    assert DEFAULT_GENERATOR_CFG['num_train_ids'] == 100
    assert DEFAULT_GENERATOR_CFG['cams_per_id'] == (3, 4)
    # lists (e.g. from a config file) become tuples, so hashes and
    # comparisons do not depend on the container type
    cfg = SyntheticGeneratorConfig.from_dict(dict(images_per_cam=[1, 2]))
    assert cfg.images_per_cam == (1, 2)
    assert cfg.to_dict() == dict(DEFAULT_GENERATOR_CFG, images_per_cam=(1, 2))


def test_config_errors():
    with pytest.raises(ValueError, match=r"generator_cfg keys \['h'\]"):
        SyntheticGeneratorConfig.from_dict(dict(h=3))
    with pytest.raises(ValueError, match='cams_per_id'):
        SyntheticGeneratorConfig(num_cams=3, cams_per_id=(1, 2))
    with pytest.raises(ValueError, match='cams_per_id'):
        SyntheticGeneratorConfig(num_cams=1, cams_per_id=(2, 2))


def test_generator_uses_the_config(tmp_path):
    counts = generate_synthetic_pedestrians(
        str(tmp_path), num_train_ids=2, num_test_ids=2, num_cams=2,
        cams_per_id=(2, 2), images_per_cam=(1, 1), height=24, width=12)
    # 2 cameras x 1 image per identity; test ids: 1 query per camera
    assert counts == dict(train=4, query=4, gallery=0)
    name = sorted((tmp_path / 'query').iterdir())[0]
    assert np.asarray(Image.open(name)).shape == (24, 12, 3)
    with pytest.raises(ValueError, match='unknown generator_cfg'):
        generate_synthetic_pedestrians(str(tmp_path / 'x'), num_ids=3)
