"""Griffe extension: renders doctest examples as Python console blocks.

The package's docstrings put their examples at the docstring's own
indentation after an `Example:` line, as Keras does, so the Google-style
parser leaves them as plain text and Markdown would read the `>>>` prompts
as nested quotes. This extension wraps every such run of doctest lines
(from a `>>>` line to the next blank line) in a fenced `pycon` block. It
changes only what the documentation shows, never the docstrings themselves.
"""

import griffe

FENCE = "```"


def fence_doctests(text):
    """Returns `text` with each unindented doctest run in a pycon fence."""
    out = []
    in_example = in_fence = False
    for line in text.splitlines():
        if line.startswith(FENCE):
            in_fence = not in_fence
        elif not in_fence and not in_example and line.startswith(">>>"):
            out.append(FENCE + "pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append(FENCE)
            in_example = False
        out.append(line)
    if in_example:
        out.append(FENCE)
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the doctest examples of every loaded object's docstring."""

    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
