"""dlbook: the code of an open deep-learning textbook.

Each module is one topic of the book and imports only more basic modules:
``autograd`` (chapter 1) stands alone; later modules build on ``utils``.
"""

from dlbook.utils import get_device, glue, set_seed, show_source

__version__ = "0.1.0"
__all__ = ["get_device", "glue", "set_seed", "show_source", "__version__"]
