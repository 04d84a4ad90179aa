# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The model zoo: names of ``model-index.yml`` -> config and weights.

As mmpretrain's ``apis/model.py`` (``ModelHub`` / ``list_models`` /
``get_model``), read with ``modelindex``; the configs of the metafiles are
relative to the model index's folder.
"""
import copy
import difflib
import fnmatch
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope

import mmreid_usl
from mmreid_usl.utils import register_all_modules
from mmreid_usl.utils.deprecation import renamed_kwargs
from mmreid_usl.utils.misc import set_test_encoder
from .inference import init_model


def model_index_path() -> Optional[str]:
    """``model-index.yml`` of the installed package (repository or .mim)."""
    pkg = osp.dirname(osp.abspath(mmreid_usl.__file__))
    for cand in (osp.join(pkg, '.mim', 'model-index.yml'),
                 osp.join(osp.dirname(pkg), 'model-index.yml')):
        if osp.isfile(cand):
            return cand
    return None


def load_model_zoo() -> Dict[str, dict]:
    """Model name (lower case) -> ``dict(name, config, weights, results)``.

    Raises:
        FileNotFoundError: This installation has no ``model-index.yml``.
    """
    path = model_index_path()
    if path is None:
        raise FileNotFoundError(
            'model-zoo names need model-index.yml, which this installation '
            'of mmreid_usl lacks; pass a config file instead.')
    from modelindex.load_model_index import load
    index = load(path)
    index.build_models_with_collections()
    root = osp.dirname(path)
    zoo = {}
    for model in index.models:
        config = model.config
        if config is not None and not osp.isabs(config):
            config = osp.join(root, config)
        zoo[model.name.lower()] = dict(
            name=model.name,
            config=config,
            weights=model.weights,
            results=[r.data for r in model.results] if model.results else [])
    return zoo


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Model-zoo names in ``model-index.yml`` (optionally a wildcard).

    Args:
        pattern (str, optional): e.g. ``'*cuhk03*'`` (case-insensitive).

    Returns:
        list[str]: Sorted names.
    """
    names = sorted(info['name'] for info in load_model_zoo().values())
    if pattern is not None:
        names = [
            n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())
        ]
    return names


def resolve_model(
    model: Union[str, Path, Config], pretrained: Union[str, Path, bool, None]
) -> Tuple[Union[str, Config], Optional[str]]:
    """Config and checkpoint of a config file / object or a zoo name.

    Args:
        model (str | Path | Config): A config file or object, or a
            model-zoo name (:func:`list_models`).
        pretrained (str | Path | bool | None): A checkpoint file; ``True``
            takes the zoo's weights of a model-zoo name; None / False: no
            checkpoint.

    Returns:
        tuple: The config (file or object) and the checkpoint (or None).

    Raises:
        TypeError: ``model`` is of another type.
        FileNotFoundError: A config file that does not exist.
        ValueError: An unknown name (with the closest ones), or
            ``pretrained=True`` for a model without published weights.
    """
    checkpoint = str(pretrained) if isinstance(pretrained,
                                               (str, Path)) else None
    if isinstance(model, Config):
        return model, checkpoint
    if not isinstance(model, (str, Path)):
        raise TypeError('model must be a config file, a Config, a '
                        'model-zoo name or a BaseModel, got '
                        f'{type(model).__name__}.')
    model = str(model)
    if model.endswith('.py') or osp.isfile(model):
        if not osp.isfile(model):
            raise FileNotFoundError(f'config {model!r} does not exist.')
        return model, checkpoint
    zoo = load_model_zoo()
    info = zoo.get(model.lower())
    if info is None:
        close = difflib.get_close_matches(model.lower(), list(zoo), n=3)
        raise ValueError(
            f'{model!r} is neither a config file nor a model-zoo name' +
            (f'; did you mean {close}?' if close else
             ' (ReIDInferencer.list_models() lists the names).'))
    if pretrained is True:
        if not info['weights']:
            raise ValueError(
                f'the model zoo has no published weights for {model!r}; '
                'pass pretrained=<checkpoint file>.')
        checkpoint = info['weights']
    return info['config'], checkpoint


@renamed_kwargs(feat_source='encoder')
def get_model(model: Union[BaseModel, str, Path, Config],
              pretrained: Union[str, Path, bool, None] = None,
              device: Union[str, torch.device] = 'cpu',
              encoder: Optional[str] = None,
              cfg_options: Optional[dict] = None
              ) -> Tuple[BaseModel, Optional[str]]:
    """A model in eval mode with its config in ``model.cfg``.

    A config file / object or a zoo name is built by
    :func:`~mmreid_usl.apis.init_model`, which loads the checkpoint and
    checks that it fits the encoder that gives the features; a built model
    is used as it is (moved to ``device``). Either way the config's
    ``default_scope`` becomes the default scope.

    Args:
        model (BaseModel | str | Path | Config): A built model (with its
            config in ``model.cfg``), a config, or a zoo name.
        pretrained (str | Path | bool | None): See :func:`resolve_model`;
            must not be a file for a built model.
        device (str | torch.device): Defaults to ``'cpu'``.
        encoder (str, optional): Overrides ``model.test_cfg.encoder``
            (``feat_source`` is its deprecated name).
        cfg_options (dict, optional): Config overrides (not for a built
            model).

    Returns:
        tuple: The model and its checkpoint file (None when none was
        loaded here).

    Raises:
        FileNotFoundError: The checkpoint file does not exist.
        ValueError: A checkpoint with a built model, or a built model
            without its config.
    """
    if isinstance(model, BaseModel):
        if encoder is not None:
            model.test_cfg['encoder'] = encoder
        if isinstance(pretrained, (str, Path)):
            raise ValueError('pass a built model with its weights loaded, '
                             'or a config with pretrained=<checkpoint>.')
        if getattr(model, 'cfg', None) is None:
            # mmpretrain's get_model keeps the config in ``_config``
            cfg = getattr(model, '_config', None)
            if cfg is None:
                raise ValueError('a built model needs its config in '
                                 'model.cfg (init_model sets it).')
            model.cfg = cfg
        register_all_modules(init_default_scope=False)
        init_default_scope(model.cfg.get('default_scope', 'mmreid_usl'))
        model.to(device)
        model.eval()
        return model, None
    cfg, checkpoint = resolve_model(model, pretrained)
    cfg_options = dict(cfg_options or {})
    if encoder is not None:  # drops an older config's test_cfg.feat_source
        cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else \
            Config.fromfile(str(cfg))
        set_test_encoder(cfg, encoder)
        cfg_options['model.test_cfg.encoder'] = encoder
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist.')
    model = init_model(cfg, checkpoint, device=device, cfg_options=cfg_options)
    return model, checkpoint


__all__ = [
    'get_model', 'list_models', 'load_model_zoo', 'model_index_path',
    'resolve_model'
]
