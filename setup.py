"""Install branched_mtl the way OpenMMLab packages are installed.

OpenMMLab's tools find a package's configs, tools and model index in
``<package>/.mim``: ``mim train/test/run/search`` and mmengine's
``'branched_mtl::...'`` config bases. The install fills that folder:

* a regular install (``pip install .``, a wheel, an sdist) copies
  ``configs/``, ``tools/`` and ``model-index.yml`` into the package;
* an editable install (``pip install -e .``) links them from the checkout
  (``branched_mtl/.mim/configs -> ../../configs`` ...), so edits show at once.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import List

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

try:  # PEP 660 editable installs (setuptools >= 64)
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # pragma: no cover - older setuptools
    editable_wheel = None

HERE = osp.dirname(osp.abspath(__file__))
PACKAGE = 'branched_mtl'
# what OpenMMLab packages carry in <package>/.mim (mmseg, mmpretrain)
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')
IGNORED = shutil.ignore_patterns('__pycache__', '*.pyc', '*.pyo')


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def _mim_sources() -> List[str]:
    missing = [i for i in MIM_ITEMS if not osp.exists(osp.join(HERE, i))]
    if missing:
        raise FileNotFoundError(
            f'{", ".join(missing)} missing beside setup.py: build from the '
            'repository or from an sdist made with its MANIFEST.in')
    return list(MIM_ITEMS)


def copy_mim_files(mim_dir: str) -> None:
    """Copy configs, tools and the model index into ``mim_dir``."""
    _remove(mim_dir)
    os.makedirs(mim_dir)
    for item in _mim_sources():
        src, dst = osp.join(HERE, item), osp.join(mim_dir, item)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=IGNORED)
        else:
            shutil.copyfile(src, dst)


def link_mim_files(mim_dir: str) -> None:
    """Link ``mim_dir``'s items to the checkout (copies where links fail)."""
    os.makedirs(mim_dir, exist_ok=True)
    for item in _mim_sources():
        src, dst = osp.join(HERE, item), osp.join(mim_dir, item)
        _remove(dst)
        try:
            # relative, so that the checkout can move
            os.symlink(osp.relpath(src, mim_dir), dst)
        except OSError:  # e.g. Windows without the symlink privilege
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=IGNORED)
            else:
                shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """build_py that also fills ``branched_mtl/.mim``."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            # the editable install imports the checkout's package folder
            link_mim_files(osp.join(HERE, PACKAGE, '.mim'))
        else:
            copy_mim_files(osp.join(self.build_lib, PACKAGE, '.mim'))


cmdclass = {'build_py': BuildPyWithMim}

if editable_wheel is not None:

    class EditableWheelWithMim(editable_wheel):
        """An editable wheel in which mim and mmengine find the package.

        mim 0.3.9 and mmengine 0.10.7 locate a package as
        ``<dist location>/<first line of top_level.txt>``. A PEP 660
        editable install puts the metadata in site-packages but leaves the
        package in the checkout, so that path does not exist. The first line
        names the checkout's package folder instead (``osp.join`` keeps an
        absolute last part); the second keeps the module name. The editable
        wheel already holds absolute paths to the checkout (its import
        hook), so nothing becomes less portable.
        """

        def run(self) -> None:
            if not hasattr(self, '_ensure_dist_info'):  # another setuptools
                super().run()
                return
            self._ensure_dist_info()  # sets self.dist_info_dir
            with tempfile.TemporaryDirectory() as tmp:
                # amend a copy: the original may be the front end's
                info = osp.join(tmp, osp.basename(str(self.dist_info_dir)))
                shutil.copytree(str(self.dist_info_dir), info)
                with open(osp.join(info, 'top_level.txt'), 'w') as f:
                    f.write(f'{osp.join(HERE, PACKAGE)}\n{PACKAGE}\n')
                self.dist_info_dir = info
                super().run()

    cmdclass['editable_wheel'] = EditableWheelWithMim

setup(
    name=PACKAGE,
    version='0.1.0',
    description='Branched multi-task networks: deciding what layers to '
    'share (an OpenMMLab 2.x plugin)',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    python_requires='>=3.10',
    # The verified stack is pinned in requirements.txt (see README).
    install_requires=[
        # OpenMMLab's wheels do not declare torch: without these a plain
        # `pip install .` imports nothing
        'torch>=2.0', 'torchvision',
        'mmengine>=0.10.7,<0.11', 'mmcv-lite>=2.0.0rc4,<2.2.0',
        'mmsegmentation>=1.2.2,<1.3', 'mmpretrain>=1.2.0,<1.3', 'ftfy',
        'regex', 'numpy', 'scipy', 'scikit-learn', 'matplotlib', 'h5py',
        'mlxtend'
    ],
    cmdclass=cmdclass,
    zip_safe=False,  # mim and mmengine read .mim as files
)
