"""Write the generated pages of the documentation site (run by the mkdocs-gen-files plugin, see mkdocs.yml).

One page per registered algorithm (with its cached trajectory plot), the catalogue, one page per component
package, the API reference pages and the navigation (SUMMARY.md, read by mkdocs-literate-nav). A new algorithm,
component or guide gets its page and nav entry here with no edit under docs/.

``OPTIMLAB_DOCS_PLOTS``: ``all`` (default), ``none``, or comma-separated algorithm names whose trajectories are
drawn (the tests build the site with one plot to stay fast; a full uncached build draws every plot once).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docsgen import pages, trajectories  # noqa: E402

import optimlab  # noqa: E402


def plotted(name: str) -> bool:
    wanted = os.environ.get("OPTIMLAB_DOCS_PLOTS", "all").strip()
    if wanted == "all":
        return True
    return name in {w.strip() for w in wanted.split(",")}


def write(path: str, text: str) -> None:
    with mkdocs_gen_files.open(path, "w") as f:
        f.write(text)


def main() -> None:
    write("algorithms/index.md", pages.catalogue_page())
    for name in optimlab.available():
        plot = None
        if plotted(name):
            plot = f"img/{name}.png"
            with mkdocs_gen_files.open(f"algorithms/{plot}", "wb") as f:
                f.write(trajectories.png(name))
        write(f"algorithms/{name}.md", pages.algorithm_page(name, plot))
    for pkg in pages.COMPONENTS:
        write(f"components/{pkg}.md", pages.component_page(pkg))
        write(f"api/{pkg}.md", pages.api_page(f"optimlab.{pkg}"))
    for module in pages.API_MODULES:
        write(f"api/{module.removeprefix('optimlab.')}.md", pages.api_page(module))
    guides = sorted((pages.DOCS / "guides").glob("*.md"))
    for guide in guides:  # hand-written pages with generated sections (<!-- generated: key -->)
        text = guide.read_text()
        filled = pages.fill_markers(text)
        if filled != text:
            write(f"guides/{guide.name}", filled)
    write("SUMMARY.md", pages.summary(guides))


main()
