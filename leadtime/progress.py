"""A progress bar for long runs on a terminal, and nothing at all otherwise.

tqdm draws it on stderr, and only after two seconds, so short runs and piped or `--json`
output stay clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(label: str, *, enabled: bool) -> Iterator[Callable[[float], None] | None]:
    """Yield a callback taking the fraction done (0..1), or None when disabled."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    layout = "{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left"
    with tqdm(total=1000, desc=label, delay=2.0, leave=False, bar_format=layout) as bar:

        def update(fraction: float) -> None:
            bar.update(max(0, int(fraction * 1000) - bar.n))

        yield update
