"""AdaShare's policy search on a multi-task config.

The schedule (AdaShare, NeurIPS 2020, and its public code; sizes in the
config's ``adashare`` dict):

1. warm-up: the full network (every block selected) trains its weights;
2. rounds that alternate ``weight_iters`` weight updates on one part of the
   training data with ``policy_iters`` policy updates on the other part
   (task losses + ``sparsity_weight`` * sparsity + ``sharing_weight`` *
   sharing), both through soft Gumbel-softmax gates;
3. curriculum: in round r only the last ``min(L, r // curriculum_step + 1)``
   blocks learn (and sample) their policy, the others run;
4. the temperature starts at ``tau`` and is multiplied by ``tau_decay``
   after every round;
5. the final policy is each task's argmax per block (no sampling, no
   best-of-N, no evaluation split read).

The two parts both come from the config's *training* loader: its dataset is
split again with :class:`branched_mtl.ProbeSplit` (``policy_fraction`` of it
for the policy). The probe (val) and test splits are never read.
"""
import ast
import copy
import logging
import math
import os
import os.path as osp
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed

from branched_mtl.pipeline.measure import model_size
from branched_mtl.registry import DATASETS, MODELS, OPTIMIZERS, build_stock
from branched_mtl.tree.config_writer import base_reference, check_task_names
from branched_mtl.tree.flops import dataset_input_shape
from branched_mtl.utils import UserError, dump_json_atomic, write_text_atomic
from branched_mtl.utils.config import check_number_list, type_name
from branched_mtl.utils.console import quiet_logger
from branched_mtl.utils.device import device_name
from .losses import sharing_loss, sparsity_loss
from .policy_encoder import PolicyEncoder

PROJECT_MODULE = 'projects.adashare.adashare'

# The search settings (a config's ``adashare = dict(...)`` overrides them),
# sized for MultiDigits' thin ResNet-18 (8 residual blocks, 1200-iteration
# schedule): 300 warm-up iterations of the full network, then 12 rounds of
# 50 weight + 25 policy iterations (1200 weight-or-policy iterations in all,
# the main job's length); the curriculum opens one more block per round from
# the top, so all 8 learn from round 8. Policy: Adam 0.01, wd 5e-4, and the
# sparsity / sharing weights of AdaShare's code; tau 5 -> 5 * 0.85^12 = 0.71.
DEFAULTS = dict(
    warmup_iters=300,
    rounds=12,
    weight_iters=50,
    policy_iters=25,
    curriculum_step=1,
    tau=5.0,
    tau_decay=0.85,
    sparsity_weight=0.001,
    sharing_weight=0.05,
    policy_optimizer=dict(type='Adam', lr=0.01, weight_decay=5e-4),
    policy_fraction=0.2,
    policy_seed=0,
    params_target=None,
    flops_target=None,
    # the comparison's size knob: one search per weight, the network
    # chosen by size alone (None: one search at sparsity_weight)
    sparsity_weights=None,
)


# ---------------------------------------------------------------- config
def search_settings(cfg: Config) -> Dict[str, Any]:
    """The config's ``adashare`` settings over :data:`DEFAULTS`.

    Raises:
        UserError: naming an unknown or out-of-range setting.
    """
    given = dict(cfg.get('adashare') or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise UserError(f'adashare: unknown setting(s) {unknown}; known: '
                        f'{sorted(DEFAULTS)}')
    s = copy.deepcopy(DEFAULTS)
    s.update(given)
    for key in ('warmup_iters', 'weight_iters', 'policy_iters'):
        _whole(s, key, 0)
    for key in ('rounds', 'curriculum_step'):
        _whole(s, key, 1)
    if not 0 < _finite(s, 'policy_fraction') < 1:
        raise UserError('adashare.policy_fraction must be in (0, 1), got '
                        f'{s["policy_fraction"]!r}')
    if not _finite(s, 'tau') > 0 or not 0 < _finite(s, 'tau_decay') <= 1:
        raise UserError('adashare.tau must be > 0 and tau_decay in (0, 1]')
    for key in ('sparsity_weight', 'sharing_weight'):
        if not _finite(s, key) >= 0:
            raise UserError(f'adashare.{key} must be >= 0, got {s[key]!r}')
    for key in ('params_target', 'flops_target'):
        s[key] = parse_size(s[key], f'adashare.{key}')
    if s['sparsity_weights'] is not None:
        check_number_list(s['sparsity_weights'], 'adashare.sparsity_weights')
    return s


def _whole(s: Dict[str, Any], key: str, low: int) -> int:
    """``s[key]`` as a whole number >= ``low``, or a one-line error."""
    value = s[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f'adashare.{key} must be a whole number >= {low}, '
                        f'got {str(value)[:40]!r}')
    return value


def _finite(s: Dict[str, Any], key: str) -> float:
    """``s[key]`` as a finite number, or a one-line error."""
    value = s[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise UserError(f'adashare.{key} must be a finite number, got '
                        f'{str(value)[:40]!r}')
    return float(value)


def parse_size(value: Union[None, int, float, str], name: str
               ) -> Optional[float]:
    """``2.1M``, ``0.5G``, ``300K`` or a number; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            value > 0 and math.isfinite(value):
        return float(value)
    m = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([KMG]?)\s*',
                     str(value), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise UserError(f'{name}: expected a positive number such as 2.1M '
                        f'or 0.5G, got {value!r}')
    scale = {'': 1, 'K': 1e3, 'M': 1e6, 'G': 1e9}[m.group(2).upper()]
    size = float(m.group(1)) * scale
    if not math.isfinite(size):
        raise UserError(f'{name}: {str(value)[:40]!r} is too large to be a '
                        'size')
    return size


def policy_encoder_config(encoder: dict,
                          policy: Optional[Dict[str, List[int]]] = None
                          ) -> dict:
    """A PolicyEncoder config with the backbone and tasks of ``encoder``
    (a BranchedEncoder or PolicyEncoder config), so that any of our configs
    runs unchanged.

    Raises:
        UserError: for an encoder with another backbone layout.
    """
    encoder = dict(encoder)
    kind = type_name(encoder)
    if kind not in ('BranchedEncoder', 'PolicyEncoder'):
        raise UserError(f'model.encoder is {encoder.get("type")!r}; AdaShare '
                        'needs a BranchedEncoder or PolicyEncoder config')
    if kind == 'BranchedEncoder' and encoder.get('granularity',
                                                 'stage') != 'stage':
        raise UserError(
            f'model.encoder: backbone {encoder["backbone"].get("type")!r} '
            f'split with granularity {encoder["granularity"]!r} has no '
            'residual blocks, so its blocks cannot be skipped')
    out = dict(type='PolicyEncoder', backbone=dict(encoder['backbone']),
               tasks=list(encoder['tasks']))
    if kind == 'PolicyEncoder' and 'tau' in encoder:
        out['tau'] = encoder['tau']
    if policy is not None:
        out['policy'] = {t: list(v) for t, v in policy.items()}
    return out


def _to_plain(value: Any) -> Any:
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v) for v in value)
    return value


# ---------------------------------------------------------------- sizes
def measure_size(model_cfg: dict, policy: Dict[str, List[int]],
                 shape: Sequence[int]) -> Dict[str, float]:
    """Parameters and FLOPs (mmengine's complexity analysis, one image) of
    the network with a fixed policy, as it is retrained.

    Returns:
        dict with ``params`` (the whole model, heads included) and
        ``flops`` (all tasks' paths, shared prefixes counted once).
    """
    cfg = copy.deepcopy(_to_plain(model_cfg))
    cfg['encoder'] = policy_encoder_config(cfg['encoder'], policy)
    return model_size(MODELS.build(cfg).eval(), tuple(shape))


def input_shape(cfg: Config) -> tuple:
    """(C, H, W) of one training image (the search never reads test)."""
    return dataset_input_shape(_to_plain(cfg.train_dataloader.dataset))


def check_targets(model_cfg: dict, tasks: List[str], num_blocks: int,
                  settings: dict, shape: Sequence[int]) -> Dict[str, float]:
    """Refuse a size target that no policy can meet: below the network in
    which every task skips every block.

    Returns:
        The smallest network's ``params`` and ``flops``.
    """
    smallest = measure_size(model_cfg, {t: [0] * num_blocks for t in tasks},
                            shape)
    for key, what in (('params_target', 'params'), ('flops_target', 'flops')):
        target = settings[key]
        if target is not None and target < smallest[what]:
            raise UserError(
                f'adashare.{key} = {target:.4g} cannot be met: the smallest '
                f'AdaShare network of this config (every task skips every '
                f'residual block) has {smallest[what]:.4g} {what}')
    return smallest


# ---------------------------------------------------------------- config out
_ALLOWED = ('_base_', 'custom_imports', 'model')


def _literal_value(node: ast.AST) -> Any:
    """A literal, or ``dict(k=<literal>, ...)``; anything else is refused."""
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id == 'dict'
                and not node.args):
            raise ValueError('call')
        return {k.arg: _literal_value(k.value) for k in node.keywords}
    return ast.literal_eval(node)


def render_policy_config(base: str, encoder: dict, header: Sequence[str] = ()
                         ) -> str:
    """Text of a config that inherits ``base`` and sets the PolicyEncoder.

    Everything is written with ``repr`` and parsed back: the text must hold
    only ``_base_``, ``custom_imports`` and ``model`` as literal data (task
    names are refused unless they are identifiers).
    """
    check_task_names(encoder['tasks'])
    if not isinstance(base, str) or not base.isprintable():
        raise ValueError(f'base must be a printable path, got {base!r}')
    encoder = dict(_to_plain(encoder), _delete_=True)
    imports = dict(imports=['branched_mtl', PROJECT_MODULE],
                   allow_failed_imports=False)
    lines = []
    for h in header:
        if not isinstance(h, str) or not h.isprintable():
            raise ValueError(f'header lines must be printable, got {h!r}')
        lines.append(f'# {h}'.rstrip())
    lines += [f'_base_ = {base!r}', f'custom_imports = {imports!r}',
              f'model = dict(encoder={encoder!r})']
    text = '\n'.join(lines) + '\n'
    body = ast.parse(text).body
    try:
        values = {n.targets[0].id: _literal_value(n.value) for n in body}
        ok = (len(body) == 3 and all(
            isinstance(n, ast.Assign) and len(n.targets) == 1 for n in body)
              and tuple(values) == _ALLOWED and values['_base_'] == base
              and values['model'] == dict(encoder=encoder))
    except (ValueError, AttributeError, SyntaxError):
        ok = False
    if not ok:
        raise RuntimeError('the rendered config is not the data intended; '
                           'refusing to write it')
    return text


# ---------------------------------------------------------------- search
class AdaShareSearch:
    """Learns a select/skip policy per task and residual block.

    Args:
        cfg: A multi-task config (BranchedEncoder or PolicyEncoder) with
            optional ``adashare`` settings (see :data:`DEFAULTS`).
        work_dir: Where ``search.json`` and ``adashare.py`` are written.
        config_path: The config file, which ``adashare.py`` inherits.
        seed: Seed of the weights, the data order, the Gumbel noise.
        log: Where progress lines go.
    """

    def __init__(self, cfg: Config, work_dir: str, config_path: str,
                 seed: int = 0, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.work_dir = osp.abspath(work_dir)
        self.config_path = osp.abspath(config_path)
        self.seed = seed
        self.log = log
        self.settings = search_settings(cfg)
        init_default_scope('branched_mtl')
        self.model_cfg = _to_plain(cfg.model)
        self.model_cfg['encoder'] = policy_encoder_config(
            self.model_cfg['encoder'])
        head_tasks = list(self.model_cfg['head'].get('task_heads', {}))
        tasks = self.model_cfg['encoder']['tasks']
        unknown = [t for t in tasks if t not in head_tasks]
        if unknown:
            raise UserError(f'task(s) {unknown} of model.encoder.tasks have '
                            f'no head in model.head.task_heads '
                            f'({head_tasks})')
        self.tasks = list(tasks)
        if isinstance(seed, bool) or not isinstance(seed, int) or \
                not 0 <= seed < 2**32:
            raise UserError(f'--seed must be a whole number in [0, 2**32), '
                            f'got {seed!r}')
        # the checks of tools/branch.py: every head's task labelled by the
        # training data (else the search trains it on nothing)
        from branched_mtl.apis.checks import check_data_tasks
        check_data_tasks(cfg, self.tasks, config_path)
        self.shape = input_shape(cfg)
        probe = PolicyEncoder(self.model_cfg['encoder']['backbone'],
                              self.tasks, policy=None)
        self.block_names = probe.block_names
        self.changes_shape = probe.changes_shape
        self.smallest = check_targets(self.model_cfg, self.tasks,
                                      probe.num_blocks, self.settings,
                                      self.shape)

    def _loaders(self):
        """Weights on ``train`` part, policy on ``probe`` part of a split
        of the training loader's data set."""
        s = self.settings
        base = _to_plain(self.cfg.train_dataloader)
        size = len(build_stock(copy.deepcopy(base['dataset']), DATASETS))
        n_policy = int(round(size * float(s['policy_fraction'])))
        if not 0 < n_policy < size:
            raise UserError(f'the training data ({size} samples) is too '
                            'small to split for weights and policy')
        loaders = []
        for part in ('train', 'probe'):
            cfg = copy.deepcopy(base)
            cfg['dataset'] = dict(type='branched_mtl.ProbeSplit', part=part,
                                  num_samples=n_policy,
                                  seed=int(s['policy_seed']),
                                  dataset=base['dataset'])
            loaders.append(Runner.build_dataloader(cfg, seed=self.seed))
        return loaders, size - n_policy, n_policy

    def run(self) -> Dict[str, Any]:
        """Search; write ``search.json`` and ``adashare.py``.

        Returns:
            The search record (policy, logits, sizes, cost).
        """
        s = self.settings
        os.makedirs(self.work_dir, exist_ok=True)
        set_random_seed(self.seed)
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        wall0, cpu0 = time.perf_counter(), time.process_time()
        model = MODELS.build(copy.deepcopy(self.model_cfg))
        # mmengine logs one line per initialised tensor
        with quiet_logger(logging.WARNING):
            model.init_weights()
        model.to(device).train()
        encoder: PolicyEncoder = model.encoder
        encoder.tau = float(s['tau'])
        (weight_loader, policy_loader), n_w, n_p = self._loaders()
        self.log(f'[adashare] tasks {self.tasks}; {encoder.num_blocks} '
                 f'residual blocks; weights on {n_w} training samples, '
                 f'policy on {n_p} others; device {device_name(device)}')
        weights = [p for n, p in model.named_parameters()
                   if n != 'encoder.policy_logits']
        w_opt = OPTIMIZERS.build(
            dict(_to_plain(self.cfg.optim_wrapper)['optimizer'],
                 params=weights))
        p_opt = OPTIMIZERS.build(dict(s['policy_optimizer'],
                                      params=[encoder.policy_logits]))
        w_iter, p_iter = iter(weight_loader), iter(policy_loader)

        def step(batch, opt, params, extra=None) -> float:
            data = model.data_preprocessor(batch, True)
            loss, _ = model.parse_losses(model(**data, mode='loss'))
            if extra is not None:
                loss = loss + extra()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        def train_only(params_on: List[torch.nn.Parameter]) -> None:
            for p in weights + [encoder.policy_logits]:
                p.requires_grad_(False)
            for p in params_on:
                p.requires_grad_(True)

        history = []
        encoder.sampling = 'full'
        train_only(weights)
        losses = [step(next(w_iter), w_opt, weights)
                  for _ in range(int(s['warmup_iters']))]
        if losses:
            self.log(f'[adashare] warm-up: {len(losses)} iterations of the '
                     f'full network, last loss {losses[-1]:.4f}')
        L = encoder.num_blocks

        def regulariser() -> torch.Tensor:
            logits = encoder.policy_logits
            return (float(s['sparsity_weight']) *
                    sparsity_loss(logits, encoder.num_learnable) +
                    float(s['sharing_weight']) * sharing_loss(logits))

        for r in range(int(s['rounds'])):
            encoder.sampling = 'gumbel'
            encoder.num_learnable = min(L, r // int(s['curriculum_step']) + 1)
            train_only(weights)
            w_losses = [step(next(w_iter), w_opt, weights)
                        for _ in range(int(s['weight_iters']))]
            train_only([encoder.policy_logits])
            p_losses = [step(next(p_iter), p_opt, None, regulariser)
                        for _ in range(int(s['policy_iters']))]
            policy = encoder.derived_policy()
            record = dict(
                round=r, learnable_blocks=encoder.num_learnable,
                tau=encoder.tau,
                weight_loss=sum(w_losses) / max(len(w_losses), 1),
                policy_loss=sum(p_losses) / max(len(p_losses), 1),
                select_prob=encoder.select_probs().cpu().tolist(),
                policy=policy)
            history.append(record)
            self.log(f'[adashare] round {r + 1}/{s["rounds"]}: last '
                     f'{encoder.num_learnable} blocks learn, tau '
                     f'{encoder.tau:.2f}, weight loss '
                     f'{record["weight_loss"]:.4f}, policy loss '
                     f'{record["policy_loss"]:.4f}, policy ' + ' '.join(
                         f'{t}:{"".join(map(str, policy[t]))}'
                         for t in self.tasks))
            encoder.tau *= float(s['tau_decay'])
        train_only(weights + [encoder.policy_logits])
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        policy = encoder.derived_policy()
        return self._finish(model, policy, history, wall, cpu, device)

    def _finish(self, model, policy, history, wall, cpu, device
                ) -> Dict[str, Any]:
        s = self.settings
        size = measure_size(self.model_cfg, policy, self.shape)
        full = measure_size(self.model_cfg,
                            {t: [1] * len(self.block_names)
                             for t in self.tasks}, self.shape)
        missed = [
            f'{what} {size[what]:.4g} > target {s[key]:.4g}'
            for key, what in (('params_target', 'params'),
                              ('flops_target', 'flops'))
            if s[key] is not None and size[what] > s[key]
        ]
        cost = dict(wall_s=wall, cpu_s=cpu, device=device_name(device))
        if device.type == 'cuda':
            cost['gpu_s'] = wall
        record = dict(
            tasks=self.tasks, block_names=self.block_names,
            changes_shape=self.changes_shape, seed=self.seed,
            settings=s, policy=policy,
            logits=model.encoder.policy_logits.detach().cpu().tolist(),
            size=size, full_network=full, smallest_network=self.smallest,
            size_target_met=not missed, size_target_missed=missed,
            cost=cost, history=history,
            config=osp.join(self.work_dir, 'adashare.py'))
        header = [
            'AdaShare policy derived by projects/adashare/tools/search.py',
            f'from {osp.basename(self.config_path)}, seed {self.seed}: '
            'per task and residual block the argmax of the select/skip',
            f'logits (1 = select). Blocks: {", ".join(self.block_names)}.',
            f'params {size["params"]}, FLOPs {size["flops"]:.4g} per image; '
            f'search {wall:.0f} s wall, {cpu:.0f} s CPU on '
            f'{cost["device"]}',
            'Train: PYTHONPATH=. python tools/train.py <this file>',
        ]
        enc = policy_encoder_config(self.model_cfg['encoder'], policy)
        text = render_policy_config(
            base_reference(self.config_path, record['config']), enc, header)
        write_text_atomic(text, record['config'])
        dump_json_atomic(record, osp.join(self.work_dir, 'search.json'))
        self.log('[adashare] policy: ' + '; '.join(
            f'{t} {"".join(map(str, policy[t]))}' for t in self.tasks))
        self.log(f'[adashare] size: {size["params"] / 1e6:.3f} M params, '
                 f'{size["flops"] / 1e6:.2f} MFLOPs per image (full network '
                 f'{full["params"] / 1e6:.3f} M, '
                 f'{full["flops"] / 1e6:.2f} MFLOPs)')
        for line in missed:
            self.log(f'[adashare] WARNING size target missed: {line}; '
                     'raise adashare.sparsity_weight')
        self.log(f'[adashare] search cost: {wall:.1f} s wall, {cpu:.1f} s '
                 f'CPU on {cost["device"]}')
        self.log(f'[adashare] wrote {record["config"]}')
        return record
