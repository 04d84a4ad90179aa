# Copyright (c) mmreid_usl contributors. All rights reserved.
"""model-index.yml and the metafiles: every named config exists and loads."""
import glob
import numbers
import os.path as osp

import pytest
from mmengine.config import Config
from modelindex.load_model_index import load

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METAFILES = sorted(glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')))


@pytest.fixture(scope='module')
def model_index():
    index = load(osp.join(REPO, 'model-index.yml'))
    index.build_models_with_collections()
    return index


def test_every_metafile_is_imported(model_index):
    imported = {osp.abspath(m.filepath) for m in model_index.models}
    assert METAFILES, 'no configs/*/metafile.yml'
    assert set(METAFILES) <= imported, set(METAFILES) - imported


def test_models_name_existing_configs_that_load(model_index):
    names = [m.name for m in model_index.models]
    assert len(names) == len(set(names)), 'duplicate model names'
    for model in model_index.models:
        config = osp.join(REPO, model.config)
        assert osp.isfile(config), f'{model.name}: {model.config} missing'
        assert osp.splitext(osp.basename(config))[0] == model.name
        cfg = Config.fromfile(config)
        assert cfg.default_scope == 'mmreid_usl' and 'model' in cfg
        assert model.in_collection, model.name
        source = model.metadata.data.get('Results Source')
        assert source, f'{model.name}: Metadata needs a Results Source'
        for result in model.results or []:
            data = result.data
            assert data['Task'] in ('Person Re-identification',
                                    'Vehicle Re-identification')
            assert data['Dataset'] and data['Metrics']
            for key, value in data['Metrics'].items():
                assert isinstance(value, numbers.Number), (model.name, key)
                assert 0 <= value <= 100, (model.name, key)


def test_collections_cite_paper_and_code(model_index):
    for coll in model_index.collections:
        paper = coll.data['Paper']
        assert paper['Title'] and paper['URL'].startswith('https://')
        assert coll.data['Code']['URL'].startswith('https://github.com/')
        assert osp.isfile(osp.join(REPO, coll.data['README']))


@pytest.mark.parametrize('metafile',
                         METAFILES,
                         ids=[osp.relpath(m, REPO) for m in METAFILES])
def test_metafile_lists_every_config_of_its_folder(model_index, metafile):
    folder = osp.dirname(metafile)
    configs = {
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(folder, '*.py'))
    }
    listed = {
        osp.normpath(m.config)
        for m in model_index.models if osp.abspath(m.filepath) == metafile
    }
    assert configs == listed, (configs - listed, listed - configs)
