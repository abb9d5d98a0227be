"""Step 3 of the method: task affinity scores.

* :func:`performance_vector` / :func:`tournament_affinity`: the paper's
  tournament matrices over recombined networks' per-sample losses.
* :func:`rsa_affinity`: representation similarity analysis of single-task
  features (BMVC version of the paper).
* :func:`collect_rsa` / :func:`collect_tournament`: gather the runs'
  ``affinity_probe/`` folders into an (L, N, N) affinity tensor.
* :func:`save_affinity` / :func:`load_affinity`: the affinity JSON file.
* :func:`order_agreement` / :func:`repeatability`: how alike two runs order
  the task pairs (the paper's repeatability figure); :func:`separation`:
  whether the pairs differ beyond the seeds' spread; :func:`cut_agreement`:
  whether a cheaper sweep ranks the pairs like the full one.

No torch import here: tensors are accepted by duck typing.
"""
from .collect import (PROBE_DIRNAME, ProbeRun, collect_rsa,
                      collect_tournament, find_probe_runs, read_probe)
from .io import AFFINITY_METHODS, load_affinity, save_affinity
from .repeatability import (cut_agreement, order_agreement, repeatability,
                            separation)
from .rsa import representation_dissimilarity, rsa_affinity
from .tournament import (performance_matrix, performance_vector,
                         tournament_affinity, tournament_matrix)

__all__ = [
    'performance_vector', 'performance_matrix', 'tournament_matrix',
    'tournament_affinity', 'representation_dissimilarity', 'rsa_affinity',
    'load_affinity', 'save_affinity', 'AFFINITY_METHODS', 'PROBE_DIRNAME',
    'ProbeRun', 'read_probe', 'find_probe_runs', 'collect_rsa',
    'collect_tournament', 'order_agreement', 'repeatability',
    'separation', 'cut_agreement'
]
