"""What a sweep shows on stderr: the bar on a terminal, plain progress lines anywhere else (a CI
log), nothing with --no-progress."""

from __future__ import annotations

import io

from safety_landscape.client.sweep.progress import ProgressBar, ProgressLines, progress_display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_progress_is_a_line_at_first_then_at_most_every_interval():
    stream = io.StringIO()
    lines = ProgressLines(63, stream=stream, interval=3600.0, servers=3)
    lines.update(1, "a:1")
    lines.update(2, "a:1")  # within the interval: no line
    lines.close()
    first, last = stream.getvalue().splitlines()
    assert first.startswith("points 1/63 on 3 servers, ETA ") and first.endswith(" min")
    assert last.startswith("points 2/63 on 3 servers done in ")
    every = io.StringIO()
    lines = ProgressLines(4, stream=every, interval=0.0, servers=1)
    for done in range(1, 5):
        lines.update(done)
    lines.close()
    assert [line.split(",")[0] for line in every.getvalue().splitlines()] == [
        "points 1/4 on 1 server", "points 2/4 on 1 server", "points 3/4 on 1 server", "points 4/4 on 1 server done in 0s"]
    assert "\r" not in every.getvalue()


def test_the_display_follows_the_stream():
    assert type(progress_display(5, stream=io.StringIO())) is ProgressLines
    assert type(progress_display(5, stream=Terminal())) is ProgressBar
    quiet = io.StringIO()
    off = progress_display(5, stream=quiet, enabled=False)
    off.update(3)
    off.close()
    assert quiet.getvalue() == ""
    forced = progress_display(5, stream=io.StringIO(), enabled=True)
    assert type(forced) is ProgressBar and forced.enabled
