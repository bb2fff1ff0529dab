"""The progress display: a tqdm bar where it can redraw, plain lines where it cannot."""

import io

from deepmle.progress import Progress


def _drive(**kw) -> str:
    stream = io.StringIO()
    p = Progress(stream=stream, **kw)
    p.begin(groups=2, epochs_per_group=2)
    p.skip(0, 2, "h8", 2)
    p.group_start(1, 2, "h16")
    for e in range(2):
        p.epoch(e, -0.1, epochs=2)
    p.group_done(-0.1, 1.0, 2.0)
    p.warn("something to hear")
    p.close()
    return stream.getvalue()


def test_bar_shows_group_epoch_ll_and_a_rate():
    text = _drive(bar=True)
    assert "group 2/2 h16" in text and "epoch 2/2 LL -0.1000" in text and "2/2" in text
    assert "\r" in text  # redrawn in place
    assert "h8: already done, skipped" in text and "group 2/2 h16: done" in text


def test_without_a_terminal_one_plain_line_per_group():
    text = _drive(bar=False)
    assert "\r" not in text and "LL -0.1000" in text
    assert text.splitlines() == [
        "group 1/2 h8: already done, skipped",
        "group 2/2 h16: done, final mean train LL -0.1000 (compile 1.0 s, train 2.0 s)",
        "deepmle: warning: something to hear",
    ]


def test_quiet_prints_only_warnings():
    assert _drive(bar=True, quiet=True) == "deepmle: warning: something to hear\n"


def test_a_stream_that_is_not_a_terminal_gets_lines_by_default():
    assert Progress(stream=io.StringIO()).bar is False
