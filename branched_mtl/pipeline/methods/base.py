"""What a way of deciding the architecture is: one interface for every
method, registered in :data:`branched_mtl.registry.METHODS`.

A method gets a :class:`MethodContext` (the seed's stage runner with its
single-task models trained, the method's folder, seed and size target) and
returns a :class:`Decision`: a tree (``branches``) or, for methods whose
networks are not trees, the encoder config it derived. What happens next is
the same for every method: the tree and its random relabellings (or the
derived network) train with the config's schedule, keep their best probe
checkpoint and read the test split once.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from branched_mtl.utils.config import check_number_list
from branched_mtl.utils.errors import UserError


@dataclass
class Decision:
    """What a method decided.

    Args:
        branches: The tree (``branches[block][group] = [task, ...]``), or
            None where the method derives another kind of network.
        encoder: The encoder config the method derived (when not a tree).
        imports: Modules the derived encoder needs (``custom_imports``).
        fingerprint: What the architecture depends on: a changed value
            retrains the models of this decision.
        cost_keys: Names in the seed's cost book that make up the search
            cost (``ctx.key(...)`` names).
        search: Recorded with the method's result (e.g. the policy).
        extra: Recorded with the trained model's result.
    """
    branches: Optional[list] = None
    encoder: Optional[dict] = None
    imports: Sequence[str] = ()
    fingerprint: Any = ''
    cost_keys: Sequence[str] = ()
    search: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodContext:
    """What a method may use.

    Args:
        job: The seed's stage runner (a ``BranchJob``): ``tasks``, ``info``
            (blocks, parameters), ``cfg``, ``results`` (single-task models
            done), ``budget`` (parameters, or a FLOPs ``Budget``).
        name: The method's registered name.
        work_dir: The method's folder at the budget being run.
        settings: The method's own settings (``cfg[settings_key]``) or None.
        settings_config: A config file: the training config plus the
            method's settings (what a search tool reads).
        budget_text: The size target as the user wrote it, or None.
        alpha: The complexity weight, or None.
        costs: The seed's cost book (``measure(key)``, ``total(keys)``).
        key: Names a record or cost at the budget being run.
        seed_dir: A folder of this seed (``seed_dir('tag', 'affinity')``).
        methods: The methods of this run.
        inputs: The fingerprint of what the method's result depends on
            (config, settings, size target): a search for other inputs
            runs again.
        log: Where progress lines go.
        seed_inputs: The same without the size target: a search that does
            not read the target is shared by every budget of the seed
            (:meth:`search_sized`); None: no sharing.
    """
    job: Any
    name: str
    work_dir: str
    settings: Optional[Dict[str, Any]]
    settings_config: str
    budget_text: Optional[str]
    alpha: Optional[float]
    costs: Any
    key: Callable[[str], str]
    seed_dir: Callable[..., str]
    methods: Sequence[str]
    inputs: str
    log: Callable[[str], None] = print
    seed_inputs: Optional[str] = None

    @property
    def seed(self) -> int:
        return self.job.seed

    def size_args(self, params: str, flops: str) -> List[str]:
        """The size target as a search tool's option: a parameter count
        (a percentage resolved against the single-task models, as the
        affinity trees read it) or FLOPs per image.

        Args:
            params: The tool's option for a parameter budget.
            flops: Its option for a FLOPs budget.

        Returns:
            ``[option, value]``, or ``[]`` without a budget.
        """
        budget = self.job.budget  # a Budget: its unit and value
        if budget is None:
            return []
        return [flops if budget.unit == 'flops' else params,
                str(int(budget))]

    def search(self, tool: str, argv: List[str], record: str,
               cwd: Optional[str] = None,
               folder: str = 'search') -> Dict[str, Any]:
        """Run a search tool once per seed (kept when done with the same
        inputs): ``python TOOL SETTINGS_CONFIG --work-dir <work_dir>/<folder>
        --seed S ARGV``, its output in ``console.log`` there, its wall and
        CPU seconds as ``<name>/<folder>`` in the cost book.

        Args:
            tool: The tool's path.
            argv: Its options beyond config, work dir and seed.
            record: The JSON file the tool leaves in its work dir.
            cwd: Where it runs (its project's root, say).
            folder: Its work dir inside the method's folder (also the name
                of its stage and cost).

        Returns:
            The record, loaded.

        Raises:
            UserError: with the end of its output when the tool fails.
        """
        from ..stages import StageBook, fingerprint
        where = osp.join(self.work_dir, folder)
        book = StageBook(self.work_dir)
        fp = fingerprint('search', self.inputs, argv)
        done = book.done(folder, fp)
        if done is not None and osp.isfile(done['record']):
            with open(done['record']) as f:
                return json.load(f)
        if book.stale(folder, fp):
            book.reset(folder, where)
        cmd = [sys.executable, tool, self.settings_config, '--work-dir',
               where, '--seed', str(self.seed)] + list(argv)
        with self.costs.measure(self.key(f'{self.name}/{folder}')):
            _run_tool(cmd, where, cwd)
        path = osp.join(where, record)
        if not osp.isfile(path):
            raise UserError(f'{osp.basename(tool)} left no {path}')
        book.finish(folder, fp, dict(record=path))
        with open(path) as f:
            return json.load(f)

    def search_sized(self, tool: str, argv: List[str], record: str,
                     knob: str, values: Optional[Sequence[float]],
                     size_of: Callable[[Dict[str, Any], str], float],
                     cwd: Optional[str] = None,
                     target_free: bool = False
                     ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Reach the size target with the method's own size knob: one
        search per knob value, and the network chosen by size alone (never
        by a score), as a fair comparison of sizes needs.

        The rule: the largest network within the target; where none fits,
        the smallest one (``size_target_met`` False). Ties go to the value
        listed first. Without values (or without a size target) the tool
        runs once, with the knob its settings give.

        Args:
            tool: The search tool's path.
            argv: Its options beyond config, work dir, seed and knob.
            record: The JSON file it leaves in its work dir.
            knob: The tool's option for the knob (``--sparsity-weight``).
            values: The knob's values to try.
            size_of: The size of a record's network in a unit
                (``'params'`` or ``'flops'``).
            cwd: Where the tool runs.
            target_free: The searches do not read the size target (``argv``
                carries none; the size only chooses among them). Then, in a
                run of several budgets, each knob value is searched once
                per seed, in the seed's method folder, and every budget
                chooses from the same searches.

        Returns:
            ``(record, tuning)``: the chosen search's record, and what was
            tried (``knob``, ``tried`` = value, size, folder per search,
            ``chosen`` and its ``folder``, ``target``, ``unit``,
            ``size_target_met``, ``cost_keys``).
        """
        budget = self.job.budget
        if not values or budget is None:
            rec = self.search(tool, argv, record, cwd)
            return rec, dict(knob=knob, tried=[], chosen=None,
                             folder='search',
                             cost_keys=[self.key(f'{self.name}/search')])
        values = check_number_list(values,
                                   f'{self.name}: the {knob} values to try')
        unit, target = budget.unit, float(budget)
        searcher = self
        if target_free and self.seed_inputs is not None:
            # one search per value and seed, whatever the budget
            searcher = replace(self, work_dir=self.seed_dir(self.name),
                               inputs=self.seed_inputs, key=lambda n: n)
        tried, records = [], []
        for v in values:
            folder = f'search_{knob.lstrip("-").replace("-", "_")}_{v:g}'
            self.log(f'[{self.name}] size knob {knob} {v:g}')
            rec = searcher.search(tool, argv + [knob, repr(v)], record, cwd,
                                  folder=folder)
            records.append(rec)
            tried.append(dict(value=v, size=float(size_of(rec, unit)),
                              folder=folder))
        fits = [i for i, t in enumerate(tried) if t['size'] <= target]
        if fits:
            best = max(fits, key=lambda i: (tried[i]['size'], -i))
        else:
            best = min(range(len(tried)), key=lambda i: (tried[i]['size'], i))
        return records[best], dict(
            knob=knob, tried=tried, chosen=tried[best]['value'],
            folder=tried[best]['folder'], target=target, unit=unit,
            size_target_met=bool(fits),
            cost_keys=[searcher.key(f'{self.name}/{t["folder"]}')
                       for t in tried])


def _run_tool(cmd: List[str], folder: str, cwd: Optional[str]) -> None:
    """A search tool, its output in ``<folder>/console.log``."""
    os.makedirs(folder, exist_ok=True)
    log = osp.join(folder, 'console.log')
    with open(log, 'ab') as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                              cwd=cwd).returncode
    if code != 0:
        with open(log, 'rb') as f:
            tail = f.read().decode(errors='replace').strip().splitlines()
        last = [line for line in tail if line.strip()][-3:]
        where = osp.relpath(cmd[1], cwd) if cwd else cmd[1]
        raise UserError(f'`{where}` failed (exit {code}): ' +
                        ' / '.join(last) + f' (all of it in {log})')


class BaseMethod:
    """A way of deciding what layers to share.

    Subclasses are registered with ``@METHODS.register_module(name=...)``
    and implement :meth:`decide`. Class attributes:

    - ``label``: the name in tables and figures;
    - ``settings_key``: the config key holding the method's own search
      settings (kept out of the config the models train with, so that
      changing them reruns this method only), or None;
    - ``branch_keys``: the entries of the config's ``branch`` dict that
      this method reads and the others do not (the tournament's
      ``sweep``): left out of the other methods' record keys, so that
      changing them reruns only the methods that read them;
    - ``marker``: matplotlib colour and marker of its points.
    """
    label: str = ''
    settings_key: Optional[str] = None
    branch_keys: Tuple[str, ...] = ()
    marker: tuple = ('tab:gray', 'o')

    def __init__(self, name: str = '') -> None:
        self.name = name or type(self).__name__

    def check(self, job: Any) -> None:
        """Refuse settings that cannot work, before anything trains.

        Args:
            job: The stage runner, its config loaded.
        """

    def notes(self, job: Any) -> List[str]:
        """What a reader of the report must know about the settings the
        method ran with (e.g. a measurement shortened below its paper's
        setting), one line each.

        Args:
            job: The stage runner, its config loaded.

        Returns:
            Lines for the report; none by default.
        """
        return []

    def decide(self, ctx: MethodContext) -> Decision:
        """Decide the architecture.

        Args:
            ctx: What the method may use.

        Returns:
            The decision.
        """
        raise NotImplementedError


class AffinityMethod(BaseMethod):
    """A task affinity measured at every split, turned into a tree by the
    tree search (alpha or a size budget): the paper's step 2 and 3.

    Subclasses implement :meth:`measure`; :meth:`inputs` and
    :meth:`weight` say what the affinity depends on and what it costs. The
    stage runner runs them as its ``affinity`` and ``tree`` stages (the
    affinity kept per seed, the tree searched per size target), so
    :meth:`decide` is not theirs to implement.
    """
    marker = ('tab:purple', 'P')

    def inputs(self, job: Any) -> List[Any]:
        """What the affinity depends on beyond the single-task models
        (parts of the affinity stage's fingerprint)."""
        return []

    def weight(self, job: Any) -> float:
        """The affinity stage's cost relative to one single-task model
        (for the time-left estimate)."""
        return 0.05

    def measure(self, job: Any, path: str, fp: str) -> None:
        """Write the affinity file (``branched_mtl.affinity`` format).

        Args:
            job: The stage runner, single-task models done.
            path: Where the affinity file goes.
            fp: The stage's fingerprint (a run for other inputs is cleared,
                not resumed).
        """
        raise NotImplementedError
