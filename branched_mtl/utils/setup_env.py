"""``register_all_modules``, the entry point every OpenMMLab package has."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register branched_mtl's modules in its registries.

    mmengine calls ``<scope>.utils.register_all_modules(False)`` for the
    registries of a package it knows by name (``MODULE2PACKAGE``, where
    :mod:`branched_mtl.compat` adds ``branched_mtl`` for ``branched_mtl::``
    config bases) that have no import locations of their own.

    Args:
        init_default_scope: Also make ``branched_mtl`` the default scope, as
            mmseg's and mmpretrain's functions do.
    """
    from branched_mtl.registry import import_locations

    # the registries' own import locations, the one list of where our
    # components are registered
    import_locations()

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created(
            'branched_mtl'):
        DefaultScope.get_instance('branched_mtl', scope_name='branched_mtl')
    elif current.scope_name != 'branched_mtl':
        warnings.warn(f'The default scope "{current.scope_name}" is replaced '
                      'by "branched_mtl"; pass init_default_scope=False to '
                      'keep it.')
        # a new instance name: DefaultScope instances are unique by name
        DefaultScope.get_instance(f'branched_mtl-{datetime.datetime.now()}',
                                  scope_name='branched_mtl')
