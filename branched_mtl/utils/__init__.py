from .io import dump_json_atomic, write_text_atomic

__all__ = ['dump_json_atomic', 'write_text_atomic']
