"""AdaShare's policy regularisers: sparsity and sharing.

Both act on the select/skip logits (tasks x blocks x 2) of a
:class:`PolicyEncoder` in search mode.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from .policy_encoder import SELECT, SKIP


def sparsity_loss(logits: Tensor, num_learnable: int) -> Tensor:
    """Cross-entropy toward *skip*, over the blocks whose policy is being
    learned (the last ``num_learnable``), averaged over tasks and blocks.

    Args:
        logits: Tasks x blocks x 2 (select, skip).
        num_learnable: The curriculum's k.

    Returns:
        A scalar; it pushes every learned block toward skipping, so its
        weight is the size knob.
    """
    learned = logits[:, logits.shape[1] - num_learnable:]
    target = torch.full(learned.shape[:2], SKIP, dtype=torch.long,
                        device=logits.device)
    return F.cross_entropy(learned.reshape(-1, 2), target.reshape(-1))


def sharing_weights(num_blocks: int) -> Tensor:
    """w_l = (L - l) / L for blocks l = 0 .. L-1: the paper's weighting,
    heaviest at the bottom block.

    AdaShare's public code uses (l + 1) / L, heaviest at the top. We follow
    the paper: bottom blocks compute generic features that every task can
    use, so disagreeing there should cost most; the code's direction would
    push tasks to agree most where they differ most (the top), against the
    paper's own argument and against branched networks' assumption of a
    shared bottom.
    """
    L = num_blocks
    return torch.tensor([(L - l) / L for l in range(L)])


def sharing_loss(logits: Tensor) -> Tensor:
    """sum over task pairs and blocks of w_l |a_il - a_jl|, a the select
    logit; divided by the number of task pairs so that its weight does not
    depend on the number of tasks.

    Args:
        logits: Tasks x blocks x 2.

    Returns:
        A scalar (0 for one task).
    """
    T, L = logits.shape[:2]
    if T < 2:
        return logits.sum() * 0
    select = logits[..., SELECT]
    w = sharing_weights(L).to(logits)
    diff = (select[:, None, :] - select[None, :, :]).abs()  # T x T x L
    pairs = torch.triu_indices(T, T, offset=1)
    return (diff[pairs[0], pairs[1]] * w).sum() / pairs.shape[1]
