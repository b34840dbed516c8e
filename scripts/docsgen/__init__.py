"""Pages of the documentation site generated from the code (run by mkdocs-gen-files through
scripts/build_docs_pages.py): one page per registered algorithm, one per component package, the API reference.

Modules: :mod:`.evidence` (what the tests check each algorithm against, read from the test sources),
:mod:`.results` (the benchmark and claims tables of docs/benchmark.md and docs/claims.md),
:mod:`.trajectories` (the cached Rosenbrock / noisy-quadratic plots), :mod:`.migration` (the migration guide's
argument tables, read from the installed libraries), :mod:`.pages` (the Markdown).
"""
