# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, save_checkpoint

from mmreid_usl.apis import extract_features, init_model
from mmreid_usl.utils.deprecation import DeprecatedNameWarning
from tiny_config import TINY_PIPELINE, tiny_model


def _cfg(root: str, shuffle: bool = False) -> Config:
    """A tiny Cluster Contrast model and a test dataloader over ``root``."""
    return Config(
        dict(
            default_scope='mmreid_usl',
            model=tiny_model(),
            test_dataloader=dict(
                batch_size=7,
                num_workers=0,
                sampler=dict(
                    type='DefaultSampler',
                    shuffle=shuffle,
                    seed=3,
                    round_up=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='ReIDFolderDataset',
                    data_root=root,
                    split='test',
                    pipeline=TINY_PIPELINE))))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    from mmreid_usl.datasets.synthetic import generate_synthetic_pedestrians
    root = str(tmp_path_factory.mktemp('apis_reid'))
    generate_synthetic_pedestrians(
        root, num_train_ids=2, num_test_ids=4, height=32, width=16)
    return root


def test_extract_features_order_shape_norm(data_root):
    torch.manual_seed(0)
    cfg = _cfg(data_root)
    model = init_model(cfg)
    assert not model.training and model.cfg is cfg

    loader = Runner.build_dataloader(cfg.test_dataloader)
    n = len(loader.dataset)
    feats, idx = extract_features(model, loader, show_progress=False)
    assert feats.shape == (n, 64) and feats.dtype == torch.float32
    assert idx.dtype == torch.long
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(n))
    torch.testing.assert_close(idx, torch.arange(n))  # unshuffled

    # a shuffled loader gives the same feature for each sample_idx; the
    # training mode is restored afterwards
    shuffled = Runner.build_dataloader(
        _cfg(data_root, shuffle=True).test_dataloader)
    model.train()
    feats2, idx2 = extract_features(model, shuffled)
    assert model.training
    assert not torch.equal(idx2, torch.arange(n))
    assert torch.equal(torch.sort(idx2).values, torch.arange(n))
    torch.testing.assert_close(feats2, feats[idx2])

    # identical to what evaluation (predict) sees
    model.eval()
    batch = model.data_preprocessor(next(iter(loader)), False)
    pred = model.predict(batch['inputs'], batch['data_samples'])
    torch.testing.assert_close(
        torch.stack([s.pred_feature for s in pred]), feats[:len(pred)])

    with pytest.raises(ValueError, match='momentum'):
        extract_features(model, loader, encoder='momentum')
    # the deprecated name of ``encoder`` (issue 25 item 8)
    with pytest.warns(DeprecatedNameWarning, match='`source`'):
        feats3, _ = extract_features(model, loader, source='student',
                                     show_progress=False)
    torch.testing.assert_close(feats3, feats, rtol=0, atol=0)


def test_init_model_loads_checkpoint(data_root, tmp_path):
    cfg = _cfg(data_root)
    torch.manual_seed(1)
    trained = init_model(cfg)
    ckpt = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(
        dict(
            meta=dict(epoch=1, dataset_meta=dict(dataset_name='x')),
            state_dict=trained.state_dict()), ckpt)
    torch.manual_seed(2)
    model = init_model(
        cfg, ckpt, cfg_options={'model.memory.old_weight': 0.3})
    assert model.memory.old_weight == 0.3
    assert model.dataset_meta == dict(dataset_name='x')
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    with pytest.raises(TypeError):
        init_model(dict(cfg))
