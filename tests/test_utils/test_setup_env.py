"""register_all_modules: the entry point mmengine and users call."""
import warnings

from mmengine import DefaultScope

from branched_mtl import registry
from branched_mtl.utils import register_all_modules


def test_register_all_modules_imports_every_location_and_sets_scope():
    """Each registry of our components has imported its locations and
    holds what they register; the default scope is ours, and a foreign
    default scope is replaced with a warning."""
    register_all_modules()
    assert DefaultScope.get_current_instance().scope_name == 'branched_mtl'
    DefaultScope.get_instance('foreign_scope_test', scope_name='mmseg')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        register_all_modules()
    assert any('"mmseg" is replaced' in str(w.message) for w in caught)
    assert DefaultScope.get_current_instance().scope_name == 'branched_mtl'
    for kind, name in (('MODELS', 'MultiTaskHead'),
                       ('MODELS', 'BranchedEncoder'),
                       ('METRICS', 'MultiTaskMetric'),
                       ('HOOKS', 'AffinityHook'),
                       ('DATASETS', 'PlantedDigits')):
        reg = getattr(registry, kind)
        assert reg._imported, kind
        assert name in reg.module_dict, (kind, name)
    # without init_default_scope the current scope stays as it is
    DefaultScope.get_instance('foreign_scope_test_2', scope_name='mmseg')
    try:
        register_all_modules(init_default_scope=False)
        assert DefaultScope.get_current_instance().scope_name == 'mmseg'
    finally:  # the tests after this one run in our scope again
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            register_all_modules()


def test_import_locations_names_a_registry():
    """A kind that is no registry of this module fails loudly."""
    import pytest
    with pytest.raises(KeyError, match='NOT_A_REGISTRY'):
        registry.import_locations(['NOT_A_REGISTRY'])
