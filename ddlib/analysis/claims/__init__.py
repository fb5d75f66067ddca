"""The claims ledger: every headline claim of the four seed papers, tested on the store.

* :mod:`~ddlib.analysis.claims.rules`: a claim, its verdict, the rule (:data:`RULE`) and the pooled tests.
* :mod:`~ddlib.analysis.claims.wang`: W1–W3, *Dataset Distillation* (Wang et al. 2018).
* :mod:`~ddlib.analysis.claims.rethinking`: R0–R4 and the supervision table, *Rethinking DD* (2026).
* :mod:`~ddlib.analysis.claims.hard_truths`: H1–H11, *Hard truths about soft labels* (CVPR 2026).
* :mod:`~ddlib.analysis.claims.cim`: C1–C5, *CIM* (2026).
* :mod:`~ddlib.analysis.claims.cost`: build costs as run and projected to the published lengths.
* :mod:`~ddlib.analysis.claims.teacher_view`: a held-out teacher's view of the sets (difficulty, relabelling).
* :mod:`~ddlib.analysis.claims.ledger`: the ledger table, the chapters' tables, text and CSV.

The ids of the first ledger (c1–c8) map as follows: c1 (DD far above real
images) → W3; c2 (distilled sets beat coresets, misattributed to *Rethinking
DD*) → R0, the earlier papers' claim that *Rethinking DD* argues against; c3
(teacher supervision shrinks the advantage, no source as stated) → R2, the
comparison under each of the three protocols; c4 → H1; c5 (inverted) → H4, with
H2 for the soft regimes; c6 → H7; c7 → C3; c8 (counted the wrong sign) → H11,
which counts only settings with a gain to explain.
"""
from ddlib.analysis.claims import cim, hard_truths, rethinking, wang  # noqa: F401  (registers the claims in order)
from ddlib.analysis.claims.ledger import (
                                          LEDGER_PAGE,
                                          chapter_claims,
                                          chapter_note,
                                          chapter_table,
                                          findings_text,
                                          claim_names,
                                          claims_list,
                                          ledger_csv,
                                          ledger_sentence,
                                          verdicts_view,
                                          ledger_table,
                                          ledger_text,
                                          settings_chart,
)
from ddlib.analysis.claims.rethinking import supervision_table
from ddlib.analysis.claims.rules import CLAIMS, RULE, VERDICTS, Claim, Verdict, tally_verdict
from ddlib.analysis.claims.teacher_view import HELD_OUT_TEACHER_SEED, teacher_view_table

__all__ = ["CLAIMS", "HELD_OUT_TEACHER_SEED", "LEDGER_PAGE", "RULE", "VERDICTS", "Claim", "Verdict",
           "chapter_claims", "chapter_note", "chapter_table", "claim_names", "claims_list", "findings_text", "ledger_csv",
           "ledger_sentence", "ledger_table", "ledger_text", "verdicts_view", "settings_chart", "supervision_table", "tally_verdict",
           "teacher_view_table"]
