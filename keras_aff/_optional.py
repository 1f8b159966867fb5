"""Optional dependencies, imported where they are needed (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

`require` imports a module of an optional extra, or raises an ImportError
that says what needs it and which `pip install "keras-aff[...]"` brings it.

Example:

>>> require("json", "demo", "An example").__name__
'json'
>>> require("no_such_module_here", "demo", "The demo")
Traceback (most recent call last):
...
ImportError: The demo needs `no_such_module_here`. Install it with ...
"""

import importlib


def require(module, extra, needed_by):
    """Imports `module` (a dotted name) and returns it; a missing package
    is an ImportError naming the extra that brings it.

    Args:
        module: str, e.g. "tf_keras" or "ai_edge_litert.interpreter".
        extra: str, the keras-aff extra that installs it, e.g. "qat".
        needed_by: str, what needs it, starting the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{needed_by} needs `{module.split('.')[0]}`. Install it with "
            f'`pip install "keras-aff[{extra}]"`. ({e})'
        ) from e
