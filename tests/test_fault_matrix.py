"""The fault matrix, in the suite: every cell must pass. The summary goes to out/fault-matrix.md and the terminal."""

from __future__ import annotations

from tests.fault_matrix import EXPECTED, PHASES, PROFILES, ROOT, run_matrix, summary


def test_fault_matrix(capsys):
    cells = run_matrix()
    text = summary(cells)
    out = ROOT / "out" / "fault-matrix.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    with capsys.disabled():
        print("\n" + text)
    assert len(cells) == len(EXPECTED) * len(PROFILES) * len(PHASES)
    failures = [c for c in cells if c.problems]
    assert not failures, text
