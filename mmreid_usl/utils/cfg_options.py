# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Check ``--cfg-options`` before they are merged into a config.

MMEngine's ``Config.merge_from_dict`` accepts any key: a misspelt top-level
key (``trian_cfg.max_epochs=1``) becomes a new, unused entry and the run
silently ignores it; a value of the wrong type (``max_epochs=abc``) fails
much later with a Python error that does not name the option. The checks
here run in the tools before anything is built. Hand-written: MMEngine has
no validation of overrides.
"""
import difflib
import logging
import numbers
from typing import Any, Dict, Iterable, List, Optional

from mmengine.logging import print_log

#: Top-level keys that ``mmengine.runner.Runner`` (``from_cfg`` and the
#: methods it calls) reads from the config.
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type',
    'strategy', 'gpu_ids'
})

#: Top-level keys this project reads besides the Runner's (the stage-1
#: hand-off: :mod:`mmreid_usl.engine.checkpointing.stage1`).
PROJECT_KEYS = frozenset(
    {'cluster_dataloader', 'stage1_checkpoint', 'stage1_config'})

#: Every top-level key with an effect.
CONSUMED_KEYS = RUNNER_KEYS | PROJECT_KEYS


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` entry that would be ignored or fail later."""


def unconsumed_top_level_keys(cfg: Dict) -> List[str]:
    """Top-level keys of a resolved config that nothing reads.

    Such keys are usually helper variables of a config file
    (``batch_size = 64`` used in ``train_dataloader``): they were
    substituted when the file was parsed, so overriding them later changes
    nothing. Name them ``__batch_size`` (MMEngine drops ``__``-prefixed
    top-level names from the parsed config) or ``_batch_size``.

    Args:
        cfg (dict | Config): A resolved config.

    Returns:
        list[str]: Sorted offending keys (``_``-prefixed keys excluded).
    """
    return sorted(k for k in cfg.keys()
                  if k not in CONSUMED_KEYS and not k.startswith('_'))


def _leaf_paths(node: Any, name: str, prefix: str = '') -> List[str]:
    """Dotted paths of every key ``name`` inside ``node``."""
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f'{prefix}{key}'
            if key == name:
                paths.append(path)
            paths += _leaf_paths(value, name, path + '.')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            paths += _leaf_paths(value, name, f'{prefix}{i}.')
    return paths


def _type_error(key: str, old: Any, new: Any) -> Optional[str]:
    """Why ``new`` cannot replace ``old`` (numbers and bools only)."""
    if old is None or new is None:
        return None
    if isinstance(old, bool):
        ok = isinstance(new, bool)
        expected = 'a bool (True/False)'
    elif isinstance(old, numbers.Integral):
        ok = isinstance(new, numbers.Integral) and not isinstance(new, bool)
        expected = 'an int'
    elif isinstance(old, numbers.Real):
        ok = isinstance(new, numbers.Real) and not isinstance(new, bool)
        expected = 'a number'
    else:
        return None
    if ok:
        return None
    return (f'--cfg-options {key}={new!r}: expected {expected} like the '
            f"config's value {old!r}, got {type(new).__name__} {new!r}.")


def check_cfg_options(cfg: Dict,
                      options: Optional[Dict[str, Any]],
                      extra_keys: Iterable[str] = ()) -> None:
    """Reject overrides that would be ignored or fail with an unnamed error.

    - an unknown top-level key (neither in the config nor read by the
      Runner / this project) is an error that suggests the closest key;
    - a top-level helper variable of the config file (see
      :func:`unconsumed_top_level_keys`) is an error that names the keys
      that hold its value (e.g. ``train_dataloader.batch_size``);
    - a number or bool replaced by a value of another type (``abc`` for an
      int, ``1.5`` for an int, ``1`` for a bool) is an error naming the key;
      an int for a float is accepted;
    - a new nested key that looks like a typo of an existing sibling only
      logs a warning (new nested keys are legitimate, e.g. optimizer
      arguments).

    Args:
        cfg (dict | Config): The config the options will be merged into.
        options (dict, optional): ``{dotted key: parsed value}`` as produced
            by MMEngine's ``DictAction``.
        extra_keys (Iterable[str]): More accepted top-level keys.

    Raises:
        ConfigOptionError: The first bad option, named.
    """
    if not options:
        return
    root = {key: cfg[key] for key in cfg.keys()}  # Config is no dict
    present = set(root)
    known = present | CONSUMED_KEYS | set(extra_keys)
    helpers = set(unconsumed_top_level_keys(cfg))
    for key, value in options.items():
        parts = key.split('.')
        top = parts[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=1)
            hint = (f" Did you mean '{close[0]}{key[len(top):]}'?"
                    if close else '')
            raise ConfigOptionError(
                f'--cfg-options {key}={value!r}: unknown top-level key '
                f"'{top}': the config has no such key and the Runner does "
                f'not read it, so it would be ignored.{hint}')
        if top in helpers and top not in extra_keys:
            uses = [p for p in _leaf_paths(root, top) if p != top]
            where = (f' Override where it is used instead, e.g. '
                     f'{", ".join(uses[:4])}.' if uses else '')
            raise ConfigOptionError(
                f"--cfg-options {key}={value!r}: '{top}' is a helper "
                'variable of the config file, substituted when the file was '
                f'read; changing it now has no effect.{where}')
        node: Any = root
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif (isinstance(node, (list, tuple)) and part.isdigit()
                  and int(part) < len(node)):
                node = node[int(part)]
            else:
                if isinstance(node, dict) and node:
                    close = difflib.get_close_matches(
                        part, [str(k) for k in node], n=1, cutoff=0.8)
                    if close:
                        print_log(
                            f'--cfg-options {key}: adds the new key '
                            f"'{part}' next to '{close[0]}' — a typo?",
                            logger='current',
                            level=logging.WARNING)
                break
        else:
            problem = _type_error(key, node, value)
            if problem:
                raise ConfigOptionError(problem)
