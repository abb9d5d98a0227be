"""StageRunner helpers: the settings that only change how work runs."""
from mmengine.config import ConfigDict

from branched_mtl.pipeline.methods.tournament import TournamentMethod
from branched_mtl.pipeline.stages import fingerprint
from branched_mtl.utils.config import result_settings


def test_run_only_settings_leave_fingerprints_alone():
    plain = ConfigDict(random_trees=3, probe=dict(num_samples=64),
                       sweep=dict(iters=60, data_fraction=0.25))
    fast = ConfigDict(plain, max_parallel=2, precollate=True,
                      sweep=dict(iters=60, data_fraction=0.25,
                                 max_parallel=2))
    assert result_settings(fast) == result_settings(plain)
    # the same fingerprint as the settings written before these keys
    # existed (a ConfigDict hashes like the plain dict it holds)
    assert fingerprint(result_settings(fast)) == fingerprint(plain)
    # a setting that changes results still changes the fingerprint
    longer = ConfigDict(plain, sweep=dict(iters=600, data_fraction=0.25))
    assert fingerprint(result_settings(longer)) != fingerprint(plain)
    assert result_settings(None) is None and result_settings(3) == 3

    class Job:
        settings = fast
        budget = None

        @staticmethod
        def config_text():
            return 'cfg'
    plain_job = type('PlainJob', (Job, ), dict(settings=plain))
    method = TournamentMethod()
    assert method.inputs(Job) == method.inputs(plain_job)
