"""training/fitting.py: the promotion gate."""

from __future__ import annotations

from training.fitting import gate

def test_gate_rules():
    def m(s, b=0.9):
        return {"holdout": {"spearman": s}, "behaviour": {"pairs": b}}

    assert gate(m(0.3), None).promote
    assert gate(m(0.295), m(0.30), tolerance=0.01).promote
    assert not gate(m(0.28), m(0.30), tolerance=0.01).promote
    assert not gate(m(0.35, b=0.80), m(0.30, b=0.90)).promote
    assert not gate(m(None), m(0.3)).promote


def test_gate_refuses_lost_invariance_or_direction_checks():
    def m(inv, dirn):
        return {"holdout": {"spearman": 0.3},
                "behaviour": {"pairs": 0.95, "invariance": inv, "invariance_n": 6, "direction": dirn, "direction_n": 10}}

    champion = m(4 / 6, 1.0)
    assert gate(m(4 / 6, 1.0), champion).promote
    assert gate(m(3 / 6, 0.9), champion).promote  # one check of each part lost: tolerated
    refused = gate(m(2 / 6, 1.0), champion)
    assert not refused.promote and "invariance" in refused.reason
    refused = gate(m(4 / 6, 0.8), champion)
    assert not refused.promote and "direction" in refused.reason
    # A champion recorded before these counts existed is compared on pairs only.
    assert gate(m(0.0, 0.0), {"holdout": {"spearman": 0.3}, "behaviour": {"pairs": 0.95}}).promote
