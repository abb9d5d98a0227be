
from . import affinity_hook, recombination_hook  # noqa: F401 (registers AffinityHook, RecombinationHook)
