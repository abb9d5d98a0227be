from .data_preprocessors import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .describe import describe_model
from .encoders import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .mtl_models import *  # noqa: F401,F403

__all__ = ['describe_model']
