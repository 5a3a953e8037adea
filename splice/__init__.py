"""splice-bench: Splice (Tumanyan et al., CVPR 2022) as a library, and the harness that
benchmarks it against other appearance-transfer methods.

Public API::

    from splice import SpliceConfig, train_splice, ViTFeatures, load_vit, Pair, RunSettings
"""

__version__ = "0.1.0"

from splice.core.errors import UserError  # noqa: F401
from splice.core.geometry import Geometry  # noqa: F401
from splice.core.method import Method, MethodResult, Pair, RunSettings  # noqa: F401
