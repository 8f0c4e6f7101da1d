"""The report's "Comparisons the paper makes": TCM vs classification vs random vs published (and a `final`
group, kept apart), SAM modes, searched vs published; each with n, mean, a seeded bootstrap 95 % interval
and, for the headline pairs, the probability that one group beats the other (`analysis.uncertainty`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import figures, tables, uncertainty
from analysis.report_files import markdown_table, save_csv, save_png

SUPERVISION_PAIRS = (("tcm", "classification"), ("tcm", "random"), ("classification", "random"),
                     ("tcm", "published"), ("searched", "published"), ("searched", "random"))
SAM_PAIRS = (("pos", "none"), ("neg", "none"), ("pos_neg", "none"), ("pos_neg", "pos"))
SUMMARY_SHOWN = ["n", "mean", "ci_low", "ci_high", "std", "min", "max", "best_trial", "anecdotal"]


def comparison_section(out: Path, runs: pd.DataFrame, written: list[Path], seed: int = uncertainty.SEED) -> list[str]:
    """The three comparisons as report.md lines, their CSVs and PNGs written into `out`."""
    lines = ["Every comparison gives n, the mean and a bootstrap 95 % interval of the mean "
             f"({uncertainty.RESAMPLES} resamples, seed {seed}); *P(a beats b)* is the share of paired bootstrap "
             f"draws in which a's mean exceeds b's. Groups with fewer than {uncertainty.MIN_TRIALS} trials are "
             "anecdotal.", "", "### TCM vs classification supervision vs random genotypes", ""]
    supervision = tables.supervision_comparison(runs)
    lines += _distribution(out, supervision, "group", "source/mAP", "supervision", "Retrained source mAP per group",
                           written, "No data: no finished retrain trial with a `msinet.group` tag and `source/mAP`.",
                           SUPERVISION_PAIRS, seed)
    if "final" in set(supervision["group"]):
        lines += ["", "Group `final` (the chosen configuration retrained on every training identity, docs/method.md) "
                      "is its own row: it trained on more data than the other groups and is not pooled with them."]
    lines += ["", "### SAM modes in cross-domain", ""]
    sam = tables.sam_comparison(runs)
    lines += _distribution(out, sam, "sam_mode", "target/mAP", "sam_modes", "Target mAP per SAM mode", written,
                           "No data: no finished cross-domain retrain trial (`target/mAP`) with a `sam_mode` param.",
                           SAM_PAIRS, seed)
    lines += ["", "### Searched vs published genotype", ""]
    return lines + _published_lines(out, runs, written, seed)


def _published_lines(out: Path, runs: pd.DataFrame, written: list[Path], seed: int) -> list[str]:
    published = tables.published_comparison(runs)
    present = set(published["origin"])
    if not {"published", "searched"} <= present:
        missing = " and ".join(sorted({"published", "searched"} - present))
        return [f"No data: no finished retrain of a {missing} genotype with a source or target mAP."]
    value = "source/mAP" if published["source/mAP"].notna().any() else "target/mAP"
    shown = published.dropna(subset=[value]).assign(phase=lambda frame: frame["phase"].fillna("?"))
    shown = shown.assign(category=shown["origin"] + " / " + shown["phase"])
    save_csv(published, out / "published.csv", written)
    summary = save_csv(uncertainty.interval_summary(shown, ["phase", "origin"], value, seed),
                       out / "published_summary.csv", written)
    save_png(figures.plot_distribution(shown, "category", value, out / "published.png",
                                       f"{value}: searched vs published genotype"), written)
    pairs = [uncertainty.pair_table(block, "origin", value, [("searched", "published")], seed).assign(phase=phase)
             for phase, block in shown.groupby("phase", sort=False)]
    pair_frame = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    lines = ["Published = group `published` or param genotype `msmt`; searched = any other non-random "
             "genotype; compared within each phase.", "",
             markdown_table(_rounded(summary[["phase", "origin", *SUMMARY_SHOWN]]))]
    lines += _pair_lines(out, pair_frame, "published_pairs", written)
    lines += _anecdote(summary, ["phase", "origin"])
    return lines + ["", "![published](published.png)"]


def _distribution(out: Path, long: pd.DataFrame, by: str, value: str, name: str, title: str, written: list[Path],
                  absent: str, pairs, seed: int) -> list[str]:
    if long.empty:
        return [absent]
    save_csv(long, out / f"{name}.csv", written)
    summary = save_csv(uncertainty.interval_summary(long, by, value, seed), out / f"{name}_summary.csv", written)
    save_png(figures.plot_distribution(long, by, value, out / f"{name}.png", title), written)
    lines = [markdown_table(_rounded(summary[[by, *SUMMARY_SHOWN]]))]
    lines += _pair_lines(out, uncertainty.pair_table(long, by, value, pairs, seed), f"{name}_pairs", written)
    return lines + _anecdote(summary, by) + ["", f"![{name}]({name}.png)"]


def _pair_lines(out: Path, pairs: pd.DataFrame, name: str, written: list[Path]) -> list[str]:
    if pairs.empty:
        return []
    save_csv(pairs, out / f"{name}.csv", written)
    lines = ["", "Headline pairs:", ""]
    for row in pairs.itertuples():
        where = f" (phase {row.phase})" if "phase" in pairs and isinstance(getattr(row, "phase", None), str) else ""
        note = " — anecdotal" if row.anecdotal else ""
        lines.append(f"- {row.a} vs {row.b}{where}: mean {row.mean_a:.4f} (n={row.n_a}) vs {row.mean_b:.4f} "
                     f"(n={row.n_b}), difference {row.difference:+.4f}, P({row.a} beats {row.b}) = "
                     f"{row.p_a_beats_b:.2f}{note}")
    return lines


def _anecdote(summary: pd.DataFrame, by) -> list[str]:
    sentence = uncertainty.anecdote_sentence(summary, by)
    return ["", sentence] if sentence else []


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.round({column: 4 for column in ("mean", "ci_low", "ci_high", "std", "min", "max")})
