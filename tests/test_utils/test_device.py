"""branched_mtl.utils.device: the device a process computes on, in words."""
import torch

from branched_mtl.utils import device_name


def test_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 3)
    assert device_name() == 'CPU (3 threads)'
    assert device_name('cpu') == 'CPU (3 threads)'


def test_gpu_by_default_when_there_is_one(monkeypatch):
    asked = []

    def name(device=None):
        asked.append(device)
        return 'NVIDIA H100 80GB HBM3'

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_device_name', name)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 16)
    assert device_name() == 'GPU (NVIDIA H100 80GB HBM3)'
    # the device given, not the default one
    assert device_name(torch.device('cuda', 1)) == \
        'GPU (NVIDIA H100 80GB HBM3)'
    assert asked[-1] == torch.device('cuda', 1)
    assert device_name('cuda:0') == 'GPU (NVIDIA H100 80GB HBM3)'
    assert asked[-1] == torch.device('cuda', 0)
    # a CPU run on a machine with a GPU says CPU
    assert device_name('cpu') == 'CPU (16 threads)'
    assert device_name(torch.device('cpu')) == 'CPU (16 threads)'
