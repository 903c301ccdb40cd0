"""The three dynamics models by name, so scripts and checkpoints can refer to them."""
from models.mdrnn import MDRNN
from models.transformers_de import TraDE, TransformerDE

DYNAMICS = {"mdrnn": MDRNN, "transformer": TransformerDE, "trade": TraDE}
NAMES = {"mdrnn": "MDN-RNN", "transformer": "Transformer", "trade": "TraDE"}  # in tables and plots
TITLES = {"mdrnn": "the MDN-RNN", "transformer": "the Transformer density estimator",
          "trade": "TraDE (transformer with a GRU positional encoding)"}


def build_dynamics(name):
    """'mdrnn' | 'transformer' | 'trade' -> a freshly initialised model."""
    if name not in DYNAMICS:
        raise ValueError(f"unknown dynamics model {name!r}; choose one of {sorted(DYNAMICS)}")
    return DYNAMICS[name]()
