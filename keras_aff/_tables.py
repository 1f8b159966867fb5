"""Plain-text tables for reports and the CLI (private).

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082
"""


def markdown_table(headers, rows):
    """A GitHub-markdown table with aligned columns.

    Example:

    >>> table = keras_aff._tables.markdown_table(
    ...     ["format", "size"], [["ONNX", "65.7 KiB"]]
    ... )
    >>> print(table)
    | format | size     |
    |--------|----------|
    | ONNX   | 65.7 KiB |
    """
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])
