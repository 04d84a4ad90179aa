# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
from mmengine.config import Config

from mmreid_usl.utils import cfg_options
from mmreid_usl.utils.cfg_options import (ConfigOptionError,
                                          check_cfg_options,
                                          unconsumed_top_level_keys)


def _cfg() -> Config:
    return Config(
        dict(
            batch_size=64,  # a helper variable left at top level
            train_dataloader=dict(
                batch_size=64, dataset=dict(data_root='data/x/')),
            train_cfg=dict(max_epochs=12, val_interval=4),
            optim_wrapper=dict(optimizer=dict(type='Adam', lr=3.5e-4)),
            default_hooks=dict(
                pseudo_label=dict(
                    labeler=dict(clusterer=dict(eps=0.6, min_samples=4)))),
            model=dict(test_cfg=dict(flip=False)),
            custom_hooks=[dict(type='ValBeforeTrainHook', interval=1)]))


def test_misspelt_top_level_key_names_option_and_suggests():
    with pytest.raises(ConfigOptionError) as err:
        check_cfg_options(_cfg(), {'trian_cfg.max_epochs': 1})
    msg = str(err.value)
    assert 'trian_cfg.max_epochs=1' in msg
    assert "Did you mean 'train_cfg.max_epochs'?" in msg


@pytest.mark.parametrize('key,value', [
    ('train_cfg.max_epochs', 'abc'),
    ('train_cfg.max_epochs', 1.5),
    ('default_hooks.pseudo_label.labeler.clusterer.eps', 'abc'),
    ('optim_wrapper.optimizer.lr', 'abc'),
    ('model.test_cfg.flip', 1),
    ('custom_hooks.0.interval', 'x'),
])
def test_wrong_type_names_the_option(key, value):
    with pytest.raises(ConfigOptionError) as err:
        check_cfg_options(_cfg(), {key: value})
    assert f'{key}={value!r}' in str(err.value)


def test_valid_options_pass():
    check_cfg_options(
        _cfg(), {
            'train_cfg.max_epochs': 2,
            'optim_wrapper.optimizer.lr': 1,  # an int for a float is fine
            'model.test_cfg.flip': True,
            'optim_wrapper.optimizer.weight_decay': 5e-4,  # new nested key
            'work_dir': 'w',  # read by the Runner, absent from the config
            'cluster_dataloader.batch_size': 8,  # project key
            'train_cfg.max_epochs_x': None,
        })
    check_cfg_options(_cfg(), None)


def test_helper_variable_is_rejected_with_its_uses():
    with pytest.raises(ConfigOptionError) as err:
        check_cfg_options(_cfg(), {'batch_size': 32})
    msg = str(err.value)
    assert 'helper variable' in msg
    assert 'train_dataloader.batch_size' in msg


def test_new_nested_key_close_to_existing_one_warns(monkeypatch):
    logged = []
    monkeypatch.setattr(cfg_options, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    check_cfg_options(_cfg(), {'train_cfg.max_epoch': 1})
    assert len(logged) == 1
    assert "'max_epoch' next to 'max_epochs'" in logged[0]


def test_unconsumed_top_level_keys():
    assert unconsumed_top_level_keys(_cfg()) == ['batch_size']
    assert unconsumed_top_level_keys(
        dict(model=1, cluster_dataloader=1, _private=1)) == []
