# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Register all modules of mmreid_usl into its registries."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every sub-package so that all modules are registered.

    Args:
        init_default_scope (bool): Also set the default scope to
            ``'mmreid_usl'`` so registries look here first. Defaults to True.
    """
    import mmreid_usl.clustering  # noqa: F401,F403
    import mmreid_usl.datasets  # noqa: F401,F403
    import mmreid_usl.engine  # noqa: F401,F403
    import mmreid_usl.evaluation  # noqa: F401,F403
    import mmreid_usl.models  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('mmreid_usl')
    if never_created:
        DefaultScope.get_instance('mmreid_usl', scope_name='mmreid_usl')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmreid_usl':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmreid_usl", '
                      '`register_all_modules` will force the current '
                      'default scope to be "mmreid_usl".')
        new_instance_name = f'mmreid_usl-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmreid_usl')
