# Copyright (c) mmreid_usl contributors. All rights reserved.
"""docs/model_zoo.md is generated from the metafiles and kept up to date."""
import importlib.util
import os.path as osp

import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'gen_model_zoo', osp.join(REPO, 'tools', 'misc', 'gen_model_zoo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_tool()


def test_model_zoo_page_is_up_to_date():
    with open(osp.join(REPO, 'docs', 'model_zoo.md'), encoding='utf-8') as f:
        page = f.read()
    assert page == gen.render(REPO), (
        'docs/model_zoo.md differs from the metafiles: run '
        'python tools/misc/gen_model_zoo.py')
    assert gen.main(['--check'], repo=REPO) == 0


def test_every_config_of_every_metafile_is_listed():
    page = gen.render(REPO)
    metafiles = gen.load_metafiles(REPO)
    assert metafiles
    for data in metafiles:
        for model in data['Models']:
            assert f'[{model["Name"]}](../{model["Config"]})' in page, (
                model['Name'])
            for result in model.get('Results') or []:
                assert str(result['Metrics']['mAP']) in page, model['Name']


def _write_repo(tmp_path, models):
    (tmp_path / 'configs' / 'm').mkdir(parents=True)
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'model-index.yml').write_text(
        yaml.safe_dump({'Import': ['configs/m/metafile.yml']}))
    metafile = {
        'Collections': [{
            'Name': 'M',
            'Paper': {
                'Title': 'A paper',
                'URL': 'https://example.org/paper'
            },
            'README': 'configs/m/README.md',
            'Code': {
                'URL': 'https://github.com/example/m'
            },
        }],
        'Models':
        models,
    }
    (tmp_path / 'configs' / 'm' / 'metafile.yml').write_text(
        yaml.safe_dump(metafile, sort_keys=False))


def test_a_model_without_results_gets_a_row_that_says_why(tmp_path):
    _write_repo(tmp_path, [
        {
            'Name':
            'm_r50_market',
            'In Collection':
            'M',
            'Metadata': {
                'Training Data': 'Market-1501',
                'Epochs': 50,
                'Batch Size': 256,
                'Results Source': 'paper Table 1',
            },
            'Results': [{
                'Task': 'Person Re-identification',
                'Dataset': 'Market-1501',
                'Metrics': {
                    'mAP': 82.0,
                    'Rank-1': 92.5
                },
            }],
            'Config':
            'configs/m/m_r50_market.py',
        },
        {
            'Name': 'm_r50-ablation_market',
            'In Collection': 'M',
            'Metadata': {
                'Training Data': ['Duke (source)', 'Market (target)'],
                'Epochs': 50,
                'Batch Size': 256,
                'Results Source': 'none published | an ablation',
            },
            'Config': 'configs/m/m_r50-ablation_market.py',
        },
    ])
    page = gen.render(str(tmp_path))
    assert '2 configs, 1 with a recorded result.' in page
    assert '## M' in page
    rows = [line for line in page.splitlines() if line.startswith('| [')]
    assert len(rows) == 2
    with_result, without = rows
    assert '| Market-1501 | 82.0 | 92.5 |' in with_result
    assert 'paper Table 1' in with_result
    cells = [c.strip() for c in without.split(' | ')]
    assert gen.NONE in cells
    assert 'Duke (source); Market (target)' in without
    # the reason, with its '|' escaped so the table keeps its columns
    assert without.endswith('none published \\| an ablation |')
    assert without.count(' | ') == with_result.count(' | ')

    assert gen.main(['--check'], repo=str(tmp_path)) == 1
    assert gen.main([], repo=str(tmp_path)) == 0
    assert gen.main(['--check'], repo=str(tmp_path)) == 0
    assert (tmp_path / 'docs' / 'model_zoo.md').read_text() == page
