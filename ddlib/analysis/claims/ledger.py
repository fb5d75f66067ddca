"""The ledger: every claim's row, the chapters' verdict tables, the terminal and CSV forms.

Chapter pages end with :func:`chapter_table` (the claims they test, from the
same code as the ledger page) and a link to it; ``python -m ddlib claims``
prints :func:`ledger_text` or :func:`ledger_csv`.
"""
from __future__ import annotations

import io
import textwrap
from typing import Optional, Sequence

import altair as alt
import pandas as pd

from ddlib.analysis.claims.rules import CLAIMS, RULE, Measured

LEDGER_PAGE = "10_claims.ipynb"
COLUMNS = ["claim", "source", "where", "statement", "chapters", "test", "rule", "verdict", "evidence", "pooled",
           "support", "against", "unclear"]


def claim_names() -> list:
    """Every claim id in the ledger's order: the papers by date (W, R, H, C), then by number."""
    key = {"W": 0, "R": 1, "H": 2, "C": 3}
    return sorted(CLAIMS.names(), key=lambda n: (key.get(n[0], 9), int(n[1:]) if n[1:].isdigit() else 0, n))


def ledger_table(frame: pd.DataFrame, names: Sequence[str] = (), measured: Optional[Measured] = None) -> pd.DataFrame:
    """One row per claim (:data:`COLUMNS`): the paper's statement, source, where, our test, rule, verdict,
    evidence and the settings it pooled."""
    out = []
    for n in names or claim_names():
        c = CLAIMS.get(n)
        v = c.evaluate(frame, measured)
        out.append({"claim": c.name, "source": c.source, "where": c.where, "statement": c.text,
                    "chapters": ", ".join(c.chapters), "test": c.test, "rule": c.rule_text, "verdict": v.verdict,
                    "evidence": v.evidence, "pooled": v.n, "support": v.support, "against": v.against,
                    "unclear": v.unclear})
    return pd.DataFrame(out, columns=COLUMNS)


def claims_list() -> pd.DataFrame:
    """Claim ids, sources and statements, without evaluating anything (``python -m ddlib claims --list``)."""
    return pd.DataFrame([{"claim": c.name, "source": c.source, "where": c.where, "chapters": ", ".join(c.chapters),
                          "statement": c.text} for c in (CLAIMS.get(n) for n in claim_names())])


def chapter_claims(chapter: str) -> list:
    """The ids of the claims whose runs the chapter ``chapter`` (notebook name without its number) holds."""
    return [n for n in claim_names() if chapter in CLAIMS.get(n).chapters]


def chapter_table(table: pd.DataFrame, chapter: str) -> pd.DataFrame:
    """The rows of ``table`` (:func:`ledger_table`) for the claims chapter ``chapter`` tests."""
    return table[table["claim"].isin(chapter_claims(chapter))][["claim", "source", "statement", "verdict",
                                                                   "evidence"]].reset_index(drop=True)


def chapter_note(chapter: str) -> str:
    """The Markdown line under a chapter's verdict table, linking to the ledger page."""
    return (f"These are the verdicts of the claims this chapter tests ({', '.join(chapter_claims(chapter))}), "
            f"computed by the same code as the [claims ledger]({LEDGER_PAGE}), where each one's rule is written out.")


def findings_text(verdicts: pd.DataFrame, chapter: str) -> str:
    """A chapter's "what we found": how its claims fared, then one bullet per claim — the claim as its
    paper states it, the verdict and the evidence (the numbers, n and intervals the rule read from the
    store) — and where the rules are written out.  ``verdicts``: :func:`chapter_table`'s rows."""
    c = verdicts["verdict"].value_counts()
    words = {"holds": ("holds", "hold"), "partly": ("holds in part", "hold in part"), "fails": ("fails", "fail"),
             "unclear": ("is unclear", "are unclear"), "untested": ("is untested here", "are untested here")}
    parts = [f"{c[v]} {words[v][int(c[v] != 1)]}" for v in words if c.get(v)]
    n = len(verdicts)
    head = (f"Of the {n} claim{'s' * (n != 1)} this chapter tests, "
            + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)) + ".")
    bullets = [f"* **{r.claim}** ({r.source}): *{r.statement}* — **{r.verdict}**. {r.evidence}"
               for r in verdicts.itertuples()]
    return "\n".join([head, "", *bullets, "", chapter_note(chapter)])


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def ledger_sentence(table: pd.DataFrame) -> str:
    """How many claims hold, partly hold, fail, are unclear or are untested."""
    c = table["verdict"].value_counts()
    return (f"Of {len(table)} claims, {_count(c.get('holds', 0), 'holds', 'hold')}, "
            f"{_count(c.get('partly', 0), 'holds partly', 'hold partly')}, "
            f"{_count(c.get('fails', 0), 'fails', 'fail')}, "
            f"{_count(c.get('unclear', 0), 'is unclear', 'are unclear')} (the seeds decide too few settings) "
            f"and {_count(c.get('untested', 0), 'is untested', 'are untested')} on this profile.")


def verdicts_view(table: pd.DataFrame) -> pd.DataFrame:
    """A reader's table of :func:`ledger_table` or :func:`chapter_table` rows: indexed by claim, with the
    statement and verdict only (narrow enough to read without scrolling; sources, rules and evidence are
    written out in the text beside it)."""
    return table.set_index("claim")[["statement", "verdict"]]


def ledger_text(table: pd.DataFrame, *, width: int = 110, evidence: bool = True) -> str:
    """The ledger for a terminal: a summary, then one block per claim."""
    lines = [ledger_sentence(table), "", *textwrap.wrap("RULE (where a rule says so): " + RULE, width), ""]
    for r in table.itertuples():
        lines.append(f"{r.claim:<4} {r.verdict.upper():<9} {r.source}; {r.where}")
        for label, text in (("claim", r.statement), ("test", r.test), ("rule", r.rule.replace(RULE, "RULE."))) + (
                (("evidence", r.evidence),) if evidence else ()):
            lines += textwrap.wrap(text, width, initial_indent=f"     {label}: ",
                                   subsequent_indent=" " * (7 + len(label)))
        lines.append("")
    return "\n".join(lines)


def ledger_csv(table: pd.DataFrame) -> str:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue()


def settings_chart(table: pd.DataFrame, *, width: int = 380):
    """Per claim, its settings by what their Holm-adjusted tests say (stacked bars; untested: none)."""
    order = ["support", "unclear", "against"]
    long = table.melt(id_vars=["claim", "source", "verdict"], value_vars=order, var_name="interval",
                      value_name="settings")
    long["claim"] = [f"{c} ({v})" for c, v in zip(long["claim"], long["verdict"])]
    long["rank"] = long["interval"].map(order.index)
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("claim:N", title=None, sort=list(dict.fromkeys(long["claim"]))),
        x=alt.X("settings:Q", title="settings (paired t-tests, Holm-adjusted)"),
        color=alt.Color("interval:N", title="setting", sort=order,
                        scale=alt.Scale(domain=order, range=["#4c9a2a", "#bdbdbd", "#d7301f"])),
        order=alt.Order("rank:Q"),
        tooltip=["claim", "source", "interval", "settings"],
    ).properties(width=width)
