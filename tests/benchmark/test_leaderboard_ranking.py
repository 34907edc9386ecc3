"""Rank only over complete rows, a footer that says how; model cards; nothing cut at 80 columns."""

import json

from rich.console import Console

from astrobench.benchmark.leaderboard import render
from astrobench.benchmark.model_card import compact_count, model_card


def rec(method, seed, value, task="redshift", tag=None, model=None, pretrain=None, options=None):
    record = {
        "kind": "astrobench-result", "method": method, "config_hash": "h" + method, "tag": tag,
        "dataset": "synthetic", "profile": "smoke", "task": task, "protocol": "linear", "label_budget": None,
        "seed": seed, "scores": {"sigma_mad": value}, "main_score": "sigma_mad",
        "higher_is_better": {"sigma_mad": False}, "method_config": {"options": options or {}},
    }
    if model is not None:
        record["model"] = model
    if pretrain is not None:
        record["pretrain"] = pretrain
    return record


def test_a_row_missing_a_column_never_outranks_a_complete_row():
    records = [rec("complete_good", s, 0.03, t) for s in (0, 1) for t in ("redshift", "dwarfs")]
    records += [rec("complete_bad", s, 0.05, t) for s in (0, 1) for t in ("redshift", "dwarfs")]
    records += [rec("one_column", s, 0.01, "redshift", tag="-PS") for s in (0, 1)]  # the best redshift cell
    rows = json.loads(render(records, "json"))
    assert [(r["method"], r["rank"], r["coverage"]) for r in rows] == [
        ("complete_good", 1, 2), ("complete_bad", 2, 2), ("one_column (-PS)", 3, 1)]
    md = render(records, "md")
    assert "rank: rows with all 2 ranked task(s) first, then by how many they have; within each, the mean" in md
    assert "missing tasks: one_column (-PS) (1 of 2)" in md


def test_within_the_same_coverage_rows_go_by_mean_rank():
    # a beats b on redshift, b beats a on dwarfs and similarity; c has two columns of three
    records = [rec("a", 0, 0.02, "redshift"), rec("a", 0, 0.06, "dwarfs"), rec("a", 0, 0.06, "similarity"),
               rec("b", 0, 0.03, "redshift"), rec("b", 0, 0.04, "dwarfs"), rec("b", 0, 0.04, "similarity"),
               rec("c", 0, 0.01, "redshift"), rec("c", 0, 0.01, "dwarfs")]
    rows = json.loads(render(records, "json"))
    assert [(r["method"], r["rank"]) for r in rows] == [("b", 1), ("a", 2), ("c", 3)]
    complete = json.loads(render(records[:6], "json"))
    assert "missing tasks" not in render(records[:6], "md") and [r["method"] for r in complete] == ["b", "a"]


def test_model_card_from_the_record_or_from_its_provenance():
    new = rec("simclr", 0, 0.05, model={"backbone": "resnet18", "parameters": 11_170_000, "embedding_dim": 512,
                                        "images_seen": 5_120_000})
    old = rec("mocov2", 0, 0.06, pretrain={"steps": 250, "global_batch": 64}, options={"backbone": "resnet10t"})
    assert model_card(new) == {"backbone": "resnet18", "parameters": 11_170_000, "embedding_dim": 512,
                               "images_seen": 5_120_000}
    assert model_card(old) == {"backbone": "resnet10t", "parameters": None, "embedding_dim": None, "images_seen": 16_000}
    assert [compact_count(n) for n in (None, 512, 16_000, 11_170_000, 2_500_000_000)] == ["–", "512", "16.0k", "11.2M", "2.5G"]
    rows = json.loads(render([new, old], "json"))
    assert rows[0]["model"]["parameters"] == 11_170_000 and rows[1]["model"]["embedding_dim"] is None
    md = render([new, old], "md")
    assert "simclr: backbone resnet18, params 11.2M, dim 512, images seen 5.1M" in md
    assert "mocov2: backbone resnet10t, params –, dim –, images seen 16.0k" in md


def test_eighty_columns_cut_no_header_and_no_cell():
    card = {"backbone": "vit_small_patch8_224", "parameters": 21_670_000, "embedding_dim": 384, "images_seen": 5_120_000}
    records = [rec(m, s, 0.04 + 0.01 * i + 0.001 * s, t, model=card)
               for i, m in enumerate(("simclr", "supervised", "mocov2 [abcdef] (long-tag)"))
               for t in ("redshift", "dwarfs", "morphology", "similarity") for s in (0, 1, 2)]
    records += [rec("partial", s, 0.01, "redshift") for s in (0, 1, 2)]
    console = Console(width=80, record=True, color_system=None)
    console.print(render(records, "rich"))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text and "..." not in text  # rich marks a cut cell with an ellipsis
    for needle in ("redshift", "dwarfs", "morphology", "similarity", "σ_MAD ↓", "mocov2 [abcdef] (long-tag)",
                   "vit_small_patch8_224", "21.7M", "384", "5.1M", "backbone", "params", "dim", "images", "seen",
                   "partial (1 of", "0.0410 ± 0.0006"):
        assert needle in text, needle
    # every method's name is whole on its row in every block
    blocks = sum(line.startswith("#   method") for line in lines)
    assert blocks >= 3 and sum(" supervised " in line for line in lines) == blocks  # scores, then the model card


def test_a_vit_is_named_as_built_not_by_its_timm_default():
    import timm

    from astrobench.benchmark.model_card import architecture

    vit = timm.create_model("vit_tiny_patch16_224", patch_size=8, img_size=64, depth=6, in_chans=5, num_classes=0)
    assert architecture(vit) == "vit_tiny_patch8_64-d6"
    assert architecture(timm.create_model("resnet10t", num_classes=0)) == "resnet10t"
    assert architecture(torch_linear()) == "Linear"


def torch_linear():
    import torch

    return torch.nn.Linear(2, 2)


def test_a_protocol_a_row_cannot_have_does_not_push_it_down():
    # the baseline has no network to fine-tune: it misses the finetune column, not a task
    records = [rec("baseline", s, 0.040, "redshift") for s in (0, 1)]
    records += [rec("baseline", s, 0.30, "similarity") for s in (0, 1)]
    for s in (0, 1):
        records += [rec("ssl", s, 0.050, "redshift"), rec("ssl", s, 0.20, "similarity")]
        records.append({**rec("ssl", s, 0.045, "redshift"), "protocol": "finetune"})
    for r in records:
        if r["task"] == "similarity":
            r["higher_is_better"] = {"sigma_mad": True}
    rows = json.loads(render(records, "json"))
    assert [(r["method"], r["rank"], r["coverage"]) for r in rows] == [("baseline", 1, 2), ("ssl", 2, 2)]
    assert "missing tasks" not in render(records, "md")


def test_one_seed_is_said_in_the_singular():
    console = Console(width=80, record=True, color_system=None)
    from astrobench.benchmark.leaderboard import render as render_table

    table = render_table([rec("solo", 0, 0.03)], "rich")
    console.print(table)
    assert "· 1 seed\n" in console.export_text() or "· 1 seed " in console.export_text()
