"""The progress shown on standard error while ``mixtures fit`` iterates."""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["ProgressReporter"]


class ProgressReporter:
    """Receives ``mx.fit``'s per-iteration :class:`~mixtures.Progress` reports and shows them on stderr.

    With tqdm: a bar over EM iterations (restarts run side by side, so the
    bar follows the furthest one) showing the best current log-likelihood.
    It starts at the first report, after compilation, and appears once the
    iterations have run for ``delay`` seconds, so short fits print nothing.
    Without tqdm: a plain line every ``every`` seconds after ``delay``.

    Args:
      max_iter: the fit's ``max_iter``.
      restarts: the number of restarts.
      delay: seconds of iterating before anything is shown.
      every: seconds between plain lines (without tqdm).
      stream: where to write (default ``sys.stderr``).

    Example:
      >>> import io, mixtures as mx
      >>> from mixtures.cli import ProgressReporter
      >>> stream = io.StringIO()
      >>> reporter = ProgressReporter(100, 2, delay=0.0, stream=stream)
      >>> for i in (1, 2, 3):
      ...     reporter(mx.Progress(0, i, -5.0 + i))
      ...     reporter(mx.Progress(1, i, -4.0 + i))
      >>> reporter.close()
      >>> "3/3" in stream.getvalue(), "log-likelihood -1.000000" in stream.getvalue()
      (True, True)
    """

    def __init__(self, max_iter: int, restarts: int, *, delay: float = 1.0, every: float = 2.0, stream=None):
        self.max_iter, self.restarts, self.delay, self.every = max_iter, restarts, delay, every
        self.stream = sys.stderr if stream is None else stream
        self.latest: dict = {}
        self.iteration = 0
        self.lock = threading.Lock()
        self.bar = None
        self.started = None
        self.last_line = 0.0
        try:
            from tqdm import tqdm
        except ImportError:
            self.tqdm = None
        else:
            self.tqdm = tqdm

    def __call__(self, report) -> None:
        with self.lock:
            now = time.monotonic()
            if self.started is None:
                self.started, self.last_line = now, now + self.delay - self.every
                if self.tqdm is not None:
                    restarts = f"{self.restarts} restart{'s' * (self.restarts > 1)}"
                    self.bar = self.tqdm(
                        total=self.max_iter, desc=f"EM, {restarts}", unit="it", file=self.stream,
                        delay=self.delay, dynamic_ncols=True, leave=True,
                    )
            self.latest[report.restart] = report.log_likelihood
            best = max(self.latest.values())
            if self.bar is not None:
                self.bar.set_postfix_str(f"log-likelihood {best:.6f}", refresh=False)
            if report.iteration <= self.iteration:
                return
            self.iteration = report.iteration
            if self.bar is not None:
                self.bar.update(self.iteration - self.bar.n)
            elif now - self.last_line >= self.every:
                self.last_line = now
                print(f"EM iteration {self.iteration}/{self.max_iter}: log-likelihood {best:.6f}", file=self.stream)

    def close(self, finished: bool = True) -> None:
        """Ends the bar: at the iterations run when the fit ``finished`` (a converged fit stops before ``max_iter``), else where it stopped."""
        if self.bar is not None:
            if finished:
                self.bar.total = self.bar.n
            self.bar.close()
