"""The report's "Ranked lists and activation maps of the top retrains": the pictures each retrain trial logged
(`rank_lists.png`, `activation_maps.png`, with the queries in `rank_lists.json`), copied beside report.md.

The pictures are drawn by the trials (`trials/evaluation/`), where the network is; this only fetches them,
so a report still needs no torch. Their queries are a seeded draw shared by every network plus each
network's own worst query, so the section says which rows two networks have in common.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.report_files import markdown_table
from analysis.runs import fetch_artefact

PICTURES = ("rank_lists.png", "activation_maps.png")
RECORD = "rank_lists.json"
DEFAULT_TOP = 3


def views_section(out: Path, tracking_uri: str, board: pd.DataFrame, written: list[Path],
                  top: int = DEFAULT_TOP) -> list[str]:
    """report.md lines for the `top` finished retrains (leaderboard order) that logged the pictures."""
    retrains = board[(board["kind"] == "retrain") & (board["status"] == "FINISHED")]
    shown: list[dict[str, Any]] = []
    for _, row in retrains.iterrows():
        if len(shown) == top:
            break
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(row["trial"]))
        files = {name: fetch_artefact(tracking_uri, row["run_id"], name, out / name.replace(".", f"-{slug}.", 1))
                 for name in (*PICTURES, RECORD)}
        if files["rank_lists.png"] is None:
            continue
        written.extend(path for path in files.values() if path is not None)
        shown.append({"row": row, "files": files, "record": _read(files[RECORD])})
    if not shown:
        return ["No data: no finished retrain trial logged `rank_lists.png` (retrains draw it at their last epoch)."]
    lines = ["Each retrain draws, on its source test split, a seeded draw of queries (the same for every network) "
             "and its own worst query by AP, each with its top gallery images: green frame = same identity, red = "
             "another identity, orange = a distractor (id 0). Beside them, the mean absolute activation of the last "
             "stage and of the part branch over the same queries.", ""]
    lines += _shared_queries(shown)
    lines += ["", markdown_table(pd.DataFrame([_facts(item) for item in shown]))]
    for item in shown:
        row, files = item["row"], item["files"]
        trial = row["trial"]
        lines += ["", f"### {trial}", "", f"genotype `{row['genotype']}`, source mAP {_number(row, 'source/mAP')}",
                  "", f"![rank lists of {trial}]({files['rank_lists.png'].name})"]
        if files["activation_maps.png"] is not None:
            lines += ["", f"![activation maps of {trial}]({files['activation_maps.png'].name})"]
    return lines


def _shared_queries(shown: list[dict[str, Any]]) -> list[str]:
    seeded = [tuple(q["index"] for q in item["record"].get("queries", []) if q.get("reason") == "seeded")
              for item in shown]
    if len(shown) < 2 or not all(seeded):
        return []
    common = [index for index in seeded[0] if all(index in other for other in seeded[1:])]
    if common:
        return [f"Queries {', '.join(map(str, common))} appear in every network's rank list below, so the networks "
                "can be compared on the same images; the row marked *worst* is each network's own."]
    return ["The networks below share no seeded query (they were tested on different datasets or sizes)."]


def _facts(item: dict[str, Any]) -> dict[str, Any]:
    row, queries = item["row"], item["record"].get("queries", [])
    worst = next((q for q in queries if q.get("reason") == "worst AP"), None)
    return {"trial": row["trial"], "source/mAP": row.get("source/mAP"),
            "queries": ", ".join(str(q["index"]) for q in queries),
            "worst query": worst["index"] if worst else None, "worst AP": worst["ap"] if worst else None,
            "dataset": item["record"].get("dataset")}


def _number(row, name: str) -> str:
    value = row.get(name)
    return f"{value:.4f}" if isinstance(value, float) and value == value else "unknown"


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}
