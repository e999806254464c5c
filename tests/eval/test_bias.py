"""Counterfactual demographic swaps on vignette text."""

from __future__ import annotations

from medmllm.eval.bias import swap_age, swap_race, swap_sex, variants
from medmllm.eval.task import Item

VIGNETTE = (
    "A 45-year-old man comes to the clinic because of chest pain. He smokes; his father had MI."
)


def test_sex_swap_rewrites_every_reference() -> None:
    text = swap_sex(VIGNETTE, "female")
    assert text == (
        "A 45-year-old woman comes to the clinic because of chest pain. She smokes; "
        "her mother had MI."
    )
    assert swap_sex(text, "male") == VIGNETTE


def test_sex_specific_vignettes_are_not_swapped() -> None:
    text = "A 29-year-old woman at 24 weeks' gestation has vaginal bleeding."
    assert swap_sex(text, "male") is None
    assert swap_age(text, 75) is None


def test_race_inserted_or_replaced() -> None:
    assert swap_race(VIGNETTE, "Asian").startswith("A 45-year-old Asian man")
    assert swap_race("A 30-year-old Black woman has fever.", "White") == (
        "A 30-year-old White woman has fever."
    )
    assert swap_race("Which enzyme is deficient?", "Asian") is None


def test_age_only_for_adults() -> None:
    assert swap_age(VIGNETTE, 75).startswith("A 75-year-old man")
    assert swap_age("A 4-year-old boy has a rash.", 50) is None


def test_variants_cover_all_groups() -> None:
    item = Item(id="q1", question=VIGNETTE, answer="A", options={"A": "x", "B": "y"})
    v = variants(item)
    assert set(v) == {"sex", "race_ethnicity", "age"}
    assert set(v["race_ethnicity"]) == {"White", "Black", "Asian", "Hispanic"}
    assert v["sex"]["female"].id == "q1|sex=female" and v["sex"]["female"].options == item.options
