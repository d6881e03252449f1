"""Mouse reports in xterm's SGR and legacy encodings, only for the modes a program set."""

from __future__ import annotations

from vibebox_tui.terminal.mouse import encode_mouse


def test_no_tracking_no_report() -> None:
    assert encode_mouse(set(), "press", 1, 0, 0) == b""
    assert encode_mouse({1006}, "press", 1, 0, 0) == b""  # encoding alone is not tracking


def test_sgr_press_release_wheel_and_modifiers() -> None:
    modes = {1000, 1006}
    assert encode_mouse(modes, "press", 1, 3, 2) == b"\x1b[<0;4;3M"
    assert encode_mouse(modes, "release", 1, 3, 2) == b"\x1b[<0;4;3m"
    assert encode_mouse(modes, "press", 3, 0, 0, ctrl=True) == b"\x1b[<18;1;1M"
    assert encode_mouse(modes, "wheel_up", 0, 5, 5) == b"\x1b[<64;6;6M"
    assert encode_mouse(modes, "wheel_down", 0, 5, 5, shift=True) == b"\x1b[<69;6;6M"


def test_motion_only_when_asked() -> None:
    assert encode_mouse({1000, 1006}, "motion", 1, 1, 1) == b""
    assert encode_mouse({1002, 1006}, "motion", 0, 1, 1) == b""
    assert encode_mouse({1002, 1006}, "motion", 1, 1, 1) == b"\x1b[<32;2;2M"
    assert encode_mouse({1003, 1006}, "motion", 0, 1, 1) == b"\x1b[<35;2;2M"


def test_legacy_encoding() -> None:
    assert encode_mouse({1000}, "press", 1, 0, 0) == b"\x1b[M !!"
    assert encode_mouse({1000}, "release", 1, 0, 0) == b"\x1b[M#!!"
    assert encode_mouse({1000}, "press", 1, 300, 0) == b""  # beyond what the bytes can say
    assert encode_mouse({9}, "release", 1, 0, 0) == b""  # X10 reports presses only
