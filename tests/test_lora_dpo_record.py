"""Re-check scripts/lora_dpo_seeds.json, the record chapter 7 cites for LoRA and DPO.

The chapter runs both cells at its own seed offset and thread count; this test checks the
chapter's asserts (and the claims of its text) on every seed and thread count the record
holds. It trains nothing.
"""

import json
import math
from pathlib import Path

import pytest

RECORD = Path(__file__).resolve().parents[1] / "scripts" / "lora_dpo_seeds.json"
KEYS = [f"{seed}/{threads}" for threads in (1, 2, 4) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def runs() -> dict:
    record = json.loads(RECORD.read_text())
    assert record["command"].startswith("OMP_NUM_THREADS=1 python scripts/lora_dpo_seeds.py")
    assert sorted(record["runs"]) == sorted(KEYS)
    return record["runs"]


@pytest.mark.parametrize("key", KEYS)
def test_lora_asserts_hold(runs, key):
    lora = runs[key]["lora"]
    assert lora["trainable"] == lora["expected_trainable"] == 8192
    assert lora["lora_layers"] == lora["expected_lora_layers"]
    assert lora["share_percent"] < 1.0  # "1.0% of the model" at one decimal
    assert lora["capitals_after"] < lora["capitals_before"] - 0.3, lora
    assert lora["ordinary_after"] > lora["ordinary_before"] + 0.5, lora
    assert lora["merge_diff"] < 1e-4, lora
    assert lora["upper_share"] > 0.8, lora["sample"]


@pytest.mark.parametrize("key", KEYS)
def test_dpo_asserts_hold(runs, key):
    dpo = runs[key]["dpo"]
    assert dpo["gap_before"] < -5 and dpo["acc_before"] < 0.15, dpo
    assert dpo["gap_dpo"] > 8 and dpo["acc_dpo"] > 0.95, dpo
    assert 0 < dpo["gap_sft"] < dpo["gap_dpo"] - 5, dpo
    assert dpo["acc_sft"] > 0.6, dpo
    assert abs(dpo["dpo_loss_first"] - math.log(2)) < 1e-4, dpo
    assert dpo["dpo_loss_last"] < 0.3, dpo
    assert 5 < dpo["quote_ratio"] < 10, dpo


def test_thread_counts_agree(runs):
    """The chapter's comments: 1, 2 and 4 threads give the same numbers (float rounding
    aside)."""
    for seed in (0, 1, 2):
        one = runs[f"{seed}/1"]
        for threads in (2, 4):
            other = runs[f"{seed}/{threads}"]
            for section, key in [("lora", k) for k in ("capitals_after", "ordinary_after",
                                                        "upper_share")] + [
                ("dpo", k) for k in ("gap_before", "gap_dpo", "gap_sft", "acc_before",
                                     "acc_dpo", "acc_sft", "dpo_loss_last")
            ]:
                assert abs(one[section][key] - other[section][key]) < 1e-3, (
                    seed, threads, key)


def test_spread_comments_match_the_record(runs):
    """The ranges in the chapter's comments (rounded as written there) cover the record."""
    lora = [run["lora"] for run in runs.values()]
    dpo = [run["dpo"] for run in runs.values()]
    # LoRA: 2.86 -> 2.36..2.42 on capitals; ordinary text 1.08 -> 1.76..2.22
    assert all(round(r["capitals_before"], 2) == 2.86 for r in lora)
    assert all(2.355 <= r["capitals_after"] < 2.425 for r in lora)
    assert all(round(r["ordinary_before"], 2) == 1.08 for r in lora)
    assert all(1.755 <= r["ordinary_after"] < 2.225 for r in lora)
    assert all(0.89 <= r["upper_share"] <= 0.98 for r in lora)  # 89-98% capitals
    # DPO: before -12.0..-13.2 (0.8-3.9%), DPO +16.2..+20.9 (100%), SFT +4.4..+7.2
    # (91-98%); DPO loss 0.693 -> 0.06..0.08
    assert all(-13.25 < r["gap_before"] < -11.95 for r in dpo)
    assert all(0.0078 <= r["acc_before"] <= 0.0391 for r in dpo)
    assert all(16.15 <= r["gap_dpo"] < 20.95 and r["acc_dpo"] == 1.0 for r in dpo)
    assert all(4.35 <= r["gap_sft"] < 7.25 for r in dpo)
    assert all(0.91 <= r["acc_sft"] <= 0.98 for r in dpo)
    assert all(0.06 <= r["dpo_loss_last"] <= 0.08 for r in dpo)
