"""MkDocs hook: publishes the benchmark results with the site.

The Benchmarks page links to the measured JSON in `benchmarks/results/`,
which lives outside `docs/`; this hook adds those files to the site under
the same path, so the links resolve and `mkdocs build --strict` checks them.
"""

import pathlib

from mkdocs.structure.files import File

RESULTS = pathlib.Path("benchmarks", "results")


def on_files(files, config):
    root = pathlib.Path(config.config_file_path).parent
    results = root / RESULTS
    if not results.is_dir():
        raise FileNotFoundError(
            f"The benchmark results are missing. Received: path={results}"
        )
    for path in sorted(results.glob("*.json")):
        files.append(
            File.generated(
                config,
                (RESULTS / path.name).as_posix(),
                abs_src_path=str(path),
            )
        )
    return files
