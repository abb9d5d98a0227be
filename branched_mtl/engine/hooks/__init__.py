from . import affinity_hook, recombination_hook  # noqa: F401 (registers AffinityHook, RecombinationHook)
from . import reliability_hooks  # noqa: F401 (registers TaskCheckHook, ResumeValidationHook)
from . import early_stop_hook  # noqa: F401 (registers ProbeEarlyStoppingHook)
from . import tag_hook  # noqa: F401 (registers TagHook)
