"""mmengine's analysis counts the fused attention op once branched_mtl's
tree FLOPs are imported (a vision transformer's attention is in its
blocks' FLOPs)."""
import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

import branched_mtl.tree.flops  # noqa: F401  (registers the handle)


class Attention(torch.nn.Module):

    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_scaled_dot_product_attention_is_counted():
    q, k, v = (torch.zeros(2, 3, 5, 8), torch.zeros(2, 3, 7, 8),
               torch.zeros(2, 3, 7, 4))
    # Q K^T: 2*3 * 5*7*8, weights times V: 2*3 * 5*7*4 multiply-adds
    expected = 2 * 3 * 5 * 7 * (8 + 4)
    assert FlopAnalyzer(Attention(), (q, k, v)).total() == expected
    # the complexity report (parameters and FLOPs of built models) agrees
    info = get_model_complexity_info(Attention(), inputs=(q, k, v),
                                     show_table=False, show_arch=False)
    assert info['flops'] == expected
