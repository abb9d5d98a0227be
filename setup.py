from setuptools import find_packages, setup

setup(
    name='branched_mtl',
    version='0.1.0',
    description='Branched multi-task networks: deciding what layers to '
    'share (an OpenMMLab 2.x plugin)',
    packages=find_packages(include=['branched_mtl', 'branched_mtl.*']),
    python_requires='>=3.10',
    # The verified stack is pinned in requirements.txt (see README).
    install_requires=[
        'mmengine>=0.10.7,<0.11', 'mmcv-lite>=2.0.0rc4,<2.2.0',
        'mmsegmentation>=1.2.2,<1.3', 'mmpretrain>=1.2.0,<1.3', 'ftfy',
        'regex', 'numpy', 'scipy', 'scikit-learn', 'matplotlib', 'h5py'
    ],
)
