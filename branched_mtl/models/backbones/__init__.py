from .thin_vgg import ThinVGG

__all__ = ['ThinVGG']
