"""Issue 19 (part 7): the conventions the benchmark review found missing, one test per finding,
and the boundaries and refusals of the calculators added with it.

Each test in the first part fails on the calculators before the issue (checked against main).
"""

from __future__ import annotations

import pytest

from medmllm.agent.tools.calculators import CALCULATORS, CalcResult
from medmllm.agent.tools.units import convert
from medmllm.errors import ToolInputError


def calc(name: str, **inputs: object) -> CalcResult:
    return CALCULATORS.get(name)(inputs)


# --- GCS: "not testable" ----------------------------------------------------------------------


def test_gcs_accepts_not_testable_components() -> None:
    intubated = CALCULATORS.get("gcs")(eye=2, verbal="NT", motor=5)
    assert intubated.value == "7T"  # written "GCS 7T": E + M with the verbal not testable
    assert intubated.details["total"] is None and intubated.details["testable_sum"] == 7
    assert "GCS 7T" in intubated.interpretation
    swollen = CALCULATORS.get("gcs")(eye="not testable", verbal=4, motor=6)
    assert swollen.value == "NT" and "not computable" in swollen.interpretation
    assert swollen.details["E"] == "NT" and swollen.details["written"] == "ENT V4 M6"
    assert CALCULATORS.get("gcs")(eye="3", verbal=4, motor=6).value == 13  # numbers as text
    with pytest.raises(ToolInputError, match="verbal"):
        CALCULATORS.get("gcs")(eye=4, verbal="absent", motor=6)


# --- Child-Pugh: unmentioned ascites / encephalopathy -----------------------------------------


def test_child_pugh_scores_unmentioned_ascites_and_encephalopathy_as_none() -> None:
    out = CALCULATORS.get("child_pugh")(bilirubin=2.5, albumin=3.0, inr=1.5)
    assert out.value == 2 + 2 + 1 + 1 + 1
    assert out.details["scored_as_none"] == ["ascites", "encephalopathy"]
    assert "scored as none" in out.interpretation and out.warnings
    given = CALCULATORS.get("child_pugh")(
        bilirubin=2.5, albumin=3.0, inr=1.5, ascites="mild", encephalopathy="none"
    )
    assert given.value == 8 and given.details["scored_as_none"] == [] and not given.warnings


# --- Caprini: the 2005 form as an explicit table ----------------------------------------------

# Caprini JA, Dis Mon 2005;51:70-78, the risk assessment form, item by item (written out here
# independently of the module's table).
CAPRINI_2005 = {
    1: [
        "minor_surgery",
        "major_surgery_within_1_month",
        "varicose_veins",
        "inflammatory_bowel_disease",
        "swollen_legs",
        "bmi_over_25",
        "acute_myocardial_infarction",
        "heart_failure_within_1_month",
        "sepsis_within_1_month",
        "serious_lung_disease_within_1_month",
        "abnormal_pulmonary_function",
        "medical_patient_at_bed_rest",
        "other_risk_factor",
        "oral_contraceptives_or_hrt",
        "pregnant_or_postpartum",
        "unexplained_stillbirth_or_recurrent_abortion",
    ],
    2: [
        "arthroscopic_surgery",
        "malignancy",
        "major_open_surgery_over_45_min",
        "laparoscopic_surgery_over_45_min",
        "confined_to_bed_over_72_h",
        "immobilizing_plaster_cast",
        "central_venous_access",
    ],
    3: [
        "history_of_vte",
        "family_history_of_vte",
        "factor_v_leiden",
        "prothrombin_20210a",
        "elevated_homocysteine",
        "lupus_anticoagulant",
        "anticardiolipin_antibodies",
        "heparin_induced_thrombocytopenia",
        "other_thrombophilia",
    ],
    5: [
        "elective_major_lower_extremity_arthroplasty",
        "hip_pelvis_or_leg_fracture",
        "stroke_within_1_month",
        "multiple_trauma_within_1_month",
        "acute_spinal_cord_injury_within_1_month",
    ],
}


@pytest.mark.parametrize(
    ("factor", "points"), [(f, p) for p, items in CAPRINI_2005.items() for f in items]
)
def test_caprini_2005_item_points(factor: str, points: int) -> None:
    assert CALCULATORS.get("caprini")(age=30, factors=[factor]).value == points


def test_caprini_table_is_explicit_and_complete() -> None:
    from medmllm.agent.tools.calculators import vte

    expected = {f: p for p, items in CAPRINI_2005.items() for f in items}
    assert expected == vte.CAPRINI_POINTS
    # age 41-60 1, 61-74 2, >= 75 3; one operation counts once (the highest)
    assert [calc("caprini", age=a).value for a in (40, 41, 60, 61, 74, 75)] == [0, 1, 1, 2, 2, 3]
    both = CALCULATORS.get("caprini")(
        age=30, factors=["minor_surgery", "major_open_surgery_over_45_min", "malignancy"]
    )
    assert both.value == 4 and both.warnings  # major surgery 2 + malignancy 2


# --- unit spellings clinicians write ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "kind", "canonical"),
    [
        (88, "beats per minute", "rate", 88),
        (88, "Beats/minute", "rate", 88),
        (88, "bpm", "rate", 88),
        (22, "breaths per minute", "rate", 22),
        (22, "breaths/min", "rate", 22),
        (22, "/min", "rate", 22),
        (150000, "/µL", "platelets", 150),  # micro sign U+00B5
        (150000, "/μL", "platelets", 150),  # Greek mu U+03BC
        (150000, "/uL", "platelets", 150),
        (150000, "cells/uL", "platelets", 150),
        (150000, "cells/µL", "platelets", 150),
        (150000, "cells/mm3", "platelets", 150),
        (150, "10^3/µL", "platelets", 150),
        (150, "x10^3/μL", "platelets", 150),
        (150, "× 10³/µL", "platelets", 150),
        (150, "x10^9/L", "platelets", 150),
        (150, "× 10⁹/L", "platelets", 150),
        (12500, "cells/µL", "leukocytes", 12.5),
        (12.5, "x 10^9/L", "leukocytes", 12.5),
        (10, "µIU/mL", "insulin", 10),
        (10, "μIU/mL", "insulin", 10),
        (10, "uIU/mL", "insulin", 10),
        (10, "mIU/L", "insulin", 10),
        (38.5, "degrees celsius", "temperature", 38.5),
        (38.5, "Degrees Celsius", "temperature", 38.5),
        (38.5, "°C", "temperature", 38.5),
        (38.5, "ºC", "temperature", 38.5),
        (38.5, "deg C", "temperature", 38.5),
        (101.3, "degrees fahrenheit", "temperature", 38.5),
    ],
)
def test_unit_spellings(value: float, unit: str, kind: str, canonical: float) -> None:
    from medmllm.agent.tools.calculators.base import Q

    assert Q(kind, -1e9, 1e9, "x").parse(f"{value} {unit}") == pytest.approx(canonical, abs=0.05)


def test_unit_spellings_reach_the_calculators() -> None:
    qtc = calc("qtc", qt=400, heart_rate="75 beats per minute")
    sirs = calc(
        "sirs",
        temperature="38.5 degrees celsius",
        heart_rate="95 bpm",
        respiratory_rate="22 breaths per minute",
        wbc="13000 cells/uL",
    )
    homa = calc("homa_ir", glucose="5.0 mmol/L", insulin="10 µIU/mL")
    fib4 = calc("fib4", age=50, ast=40, alt=36, platelets="200,000/µL")
    assert qtc.value == pytest.approx(447.2, abs=0.05) and sirs.value == 4
    assert homa.value == pytest.approx(2.22, abs=0.01) and fib4.value == pytest.approx(
        1.67, abs=0.01
    )


# --- urea is not BUN --------------------------------------------------------------------------


def test_urea_mg_dl_is_urea_not_bun() -> None:
    base = {"respiratory_rate": 18, "systolic": 130, "diastolic": 80, "age": 50}
    # urea 40 mg/dL = 6.66 mmol/L (BUN 18.7 mg/dL): no CURB-65 urea point
    urea = CALCULATORS.get("curb65")(base | {"urea": "40 mg/dL"})
    assert urea.value == 0 and urea.details["urea_mmol_l"] == pytest.approx(6.66, abs=0.01)
    # BUN 40 mg/dL = 14.3 mmol/L urea: a point
    assert CALCULATORS.get("curb65")(base | {"bun": "40 mg/dL"}).value == 1
    assert CALCULATORS.get("curb65")(base | {"urea": "40 mg/dL BUN"}).value == 1
    assert CALCULATORS.get("curb65")(base | {"urea": 7.5}).value == 1  # mmol/L
    assert convert(40, "mg/dL", "mmol/L", "urea") == pytest.approx(6.66, abs=0.01)
    assert convert(40, "mg/dL urea", "mg/dL", "bun") == pytest.approx(18.66, abs=0.01)  # / 2.144
    assert convert(10, "mmol/L", "mmol/L", "urea") == convert(28.01, "mg/dL", "mmol/L", "bun")


def test_urea_or_bun_one_and_only_one() -> None:
    base = {"respiratory_rate": 18, "systolic": 130, "diastolic": 80, "age": 50}
    with pytest.raises(ToolInputError) as err:
        CALCULATORS.get("curb65")(base)
    assert "urea: required value is missing" in err.value.message
    assert "ask the user for urea (or give bun)" in (err.value.hint or "")
    with pytest.raises(ToolInputError, match="not both"):
        CALCULATORS.get("curb65")(base | {"urea": 5, "bun": 14})
    # osmolality takes either: urea 5 mmol/L = BUN 14.0 mg/dL -> 2*140 + 90/18 + 14.0/2.8 = 290
    osm = calc("serum_osmolality", sodium=140, glucose=90, urea=5)
    assert osm.value == pytest.approx(290.0, abs=0.05)


# --- anion gap: interpret what is labelled ----------------------------------------------------


def test_anion_gap_interprets_the_value_it_labels() -> None:
    out = CALCULATORS.get("anion_gap")(sodium=140, chloride=105, bicarbonate=24, albumin=2.0)
    assert out.value == 11.0  # the uncorrected gap is the value ...
    assert "anion gap 11 mmol/L: within" in out.interpretation  # ... and is read as normal
    assert "albumin-corrected anion gap 16 mmol/L: elevated" in out.interpretation
    assert out.details == {"anion_gap": 11.0, "albumin_corrected_anion_gap": 16.0}
    plain = CALCULATORS.get("anion_gap")(sodium=140, chloride=100, bicarbonate=24)
    assert plain.interpretation.startswith("anion gap 16 mmol/L: elevated")
    assert "albumin" not in plain.interpretation


# --- QTc: bands by sex ------------------------------------------------------------------------


def test_qtc_bands_by_sex() -> None:
    # QT 400 ms at 80/min (RR 0.75 s): Bazett 400 / sqrt(0.75) = 461.9 ms
    woman = CALCULATORS.get("qtc")(qt=400, heart_rate=80, sex="female")
    man = CALCULATORS.get("qtc")(qt=400, heart_rate=80, sex="male")
    assert woman.value == man.value == pytest.approx(461.9, abs=0.05)
    assert woman.interpretation.startswith("prolonged for a woman")
    # 455 ms: prolonged in a man (>= 450), not in a woman (< 460)
    man = CALCULATORS.get("qtc")(qt=455, heart_rate=60, sex="male")
    woman = CALCULATORS.get("qtc")(qt=455, heart_rate=60, sex="female")
    assert man.interpretation.startswith("prolonged for a man")
    assert woman.interpretation.startswith("not prolonged")
    assert "give sex" in CALCULATORS.get("qtc")(qt=455, heart_rate=60).interpretation
    assert "500" in CALCULATORS.get("qtc")(qt=510, heart_rate=60, sex="female").interpretation


# --- Cockcroft-Gault: weight convention -------------------------------------------------------


def test_cockcroft_gault_weight_convention() -> None:
    man = {"age": 60, "sex": "male", "creatinine": 1.0, "height": 175}  # IBW 70.47 kg
    cg = CALCULATORS.get("cockcroft_gault")

    def crcl(weight: float, convention: str) -> tuple[float, str]:
        out = cg(man | {"weight": weight, "weight_convention": convention})
        return float(out.value), out.details["weight_basis"]

    # 80 * weight / 72 with the weight each convention picks
    assert crcl(100, "actual")[0] == pytest.approx(111.1, abs=0.05)
    assert crcl(100, "ideal")[0] == pytest.approx(78.3, abs=0.05)  # 70.47 kg
    assert crcl(100, "adjusted")[0] == pytest.approx(91.4, abs=0.05)  # 82.28 kg
    # auto: BMI >= 25 adjusted; 18.5-24.9 the lesser of ideal and actual; < 18.5 actual
    assert crcl(100, "auto") == (
        pytest.approx(91.4, abs=0.05),
        "adjusted body weight (BMI 32.7 >= 25)",
    )
    assert crcl(72, "auto")[1].startswith("ideal body weight (BMI 23.5")  # 70.47 kg
    assert crcl(68, "auto")[1].startswith("actual body weight (BMI 22.2, below ideal")
    assert crcl(55, "auto")[1] == "actual body weight (BMI 18.0 < 18.5)"
    no_height = cg(age=60, sex="male", creatinine=1.0, weight=100)
    assert no_height.value == pytest.approx(111.1, abs=0.05)
    assert no_height.details["weight_basis"] == "actual body weight (no height given)"
    with pytest.raises(ToolInputError) as err:
        cg(age=60, sex="male", creatinine=1.0, weight=100, weight_convention="ideal")
    assert "height: required value is missing" in err.value.message
    assert "ask the user for height (weight_convention 'ideal' needs the height)" in (
        err.value.hint or ""
    )


# --- boundaries and refusals of the added calculators ------------------------------------------


def test_delta_ratio_needs_a_fall_in_bicarbonate() -> None:
    with pytest.raises(ToolInputError, match="not below 24"):
        calc("delta_ratio", sodium=140, chloride=100, bicarbonate=24)
    with pytest.raises(ToolInputError, match="albumin: required value is missing"):
        calc("albumin_corrected_delta_gap", sodium=140, chloride=100, bicarbonate=20)
    gap = CALCULATORS.get("delta_gap")(sodium=140, chloride=100, bicarbonate=14)
    assert gap.details["corrected_bicarbonate"] == 28 and "alkalosis" in gap.interpretation
    ratio = CALCULATORS.get("delta_ratio")(sodium=140, chloride=110, bicarbonate=14)
    assert ratio.value == pytest.approx(0.4) and "combined" in ratio.interpretation


def test_ldl_friedewald_refuses_high_triglycerides() -> None:
    with pytest.raises(ToolInputError, match="measure LDL directly"):
        calc("ldl_friedewald", total_cholesterol=250, hdl=40, triglycerides=400)
    with pytest.raises(ToolInputError, match="measure LDL directly"):
        calc("ldl_friedewald", total_cholesterol=250, hdl=40, triglycerides="4.6 mmol/L")
    assert calc("ldl_friedewald", total_cholesterol=250, hdl=40, triglycerides=399).value == 130.2


def test_apache_ii_oxygenation_acid_base_and_alternatives() -> None:
    normal = {
        "age": 30,
        "temperature": 37,
        "mean_arterial_pressure": 90,
        "heart_rate": 80,
        "respiratory_rate": 16,
        "fio2": 40,
        "pao2": 90,
        "ph": 7.40,
        "sodium": 140,
        "potassium": 4.0,
        "creatinine": 1.0,
        "hematocrit": 40,
        "wbc": 7,
        "gcs": 15,
    }
    apache = CALCULATORS.get("apache_ii")
    assert apache(normal).value == 0
    # FiO2 60%: A-a = 0.6 * 713 - 40 / 0.8 - 100 = 277.8 -> 2 points
    high = apache(normal | {"fio2": 60, "pao2": 100, "paco2": 40})
    assert high.value == 2 and high.details["a_a_gradient"] == pytest.approx(277.8)
    assert apache(normal | {"pao2": 70}).value == 1 and apache(normal | {"pao2": 71}).value == 0
    # acute renal failure doubles the creatinine points (2.5 mg/dL: 3 -> 6)
    assert apache(normal | {"creatinine": 2.5, "acute_renal_failure": True}).value == 6
    assert apache(normal | {"creatinine": 2.5}).value == 3
    # no blood gas: bicarbonate 16 scores 3; elective post-op chronic health 2
    no_gas = normal | {"bicarbonate": 16, "ph": None}
    assert apache(no_gas).value == 3
    chronic = {"severe_organ_insufficiency_or_immunocompromised": True}
    assert apache(normal | chronic | {"admission": "elective_postoperative"}).value == 2
    assert apache(normal | chronic | {"admission": "emergency_postoperative"}).value == 5
    with pytest.raises(ToolInputError, match="give a_a_gradient or paco2"):
        apache(normal | {"fio2": 60})
    with pytest.raises(ToolInputError, match="systolic and diastolic"):
        apache({k: v for k, v in normal.items() if k != "mean_arterial_pressure"})
    with pytest.raises(ToolInputError, match="bicarbonate"):
        apache(normal | {"ph": None})


def test_psi_class_one_and_missing_labs() -> None:
    vitals = {"respiratory_rate": 18, "systolic": 120, "temperature": 37, "heart_rate": 80}
    young = CALCULATORS.get("psi_port")(vitals | {"age": 45, "sex": "female"})
    assert young.value == 35 and young.details["class"] == "I"
    assert young.warnings and "ph, bun, sodium, glucose, hematocrit, pao2" in young.warnings[0]
    # same woman with a pulse of 130 (+10, an exam finding of step 1): not class I; 45 -> II
    old = CALCULATORS.get("psi_port")(
        vitals | {"age": 45, "sex": "female", "heart_rate": 130, "ph": 7.40, "urea": 5}
    )
    assert old.value == 45 and old.details["class"] == "II"
    v = CALCULATORS.get("psi_port")(
        vitals
        | {"age": 80, "sex": "male", "neoplastic_disease": True, "oxygen_saturation": 88, "ph": 7.3}
    )
    assert v.value == 80 + 30 + 10 + 30 and v.details["class"] == "V"


def test_charlson_grades_count_once() -> None:
    out = CALCULATORS.get("charlson")(
        age=55, conditions=["mild_liver_disease", "moderate_severe_liver_disease"]
    )
    assert out.value == 1 + 3 and out.warnings
    assert out.details["ten_year_survival_percent"] == pytest.approx(53.4, abs=0.1)  # CCI 4
    assert CALCULATORS.get("charlson")(age=49).value == 0
    with pytest.raises(ToolInputError, match="conditions"):
        calc("charlson", age=60, conditions=["diabetes"])


def test_nihss_untestable_items_add_nothing() -> None:
    items = {
        k: 0
        for k in (
            "loc",
            "loc_questions",
            "loc_commands",
            "best_gaze",
            "visual_fields",
            "facial_palsy",
            "motor_left_arm",
            "motor_right_arm",
            "motor_left_leg",
            "motor_right_leg",
            "limb_ataxia",
            "sensory",
            "best_language",
            "dysarthria",
            "extinction_inattention",
        )
    }
    out = CALCULATORS.get("nihss")(
        items | {"motor_left_leg": "UN", "dysarthria": "UN", "sensory": 2}
    )
    assert out.value == 2 and out.details["untestable"] == ["motor_left_leg", "dysarthria"]
    with pytest.raises(ToolInputError, match="sensory"):
        calc("nihss", **(items | {"sensory": "UN"}))  # the form has no UN for sensory
    with pytest.raises(ToolInputError, match="loc"):
        calc("nihss", **(items | {"loc": 4}))


def test_glasgow_blatchford_bands() -> None:
    base = {"sex": "male", "systolic": 120, "heart_rate": 80}
    gbs = CALCULATORS.get("glasgow_blatchford")
    assert gbs(base | {"urea": 6.4, "hemoglobin": 13}).value == 0
    assert "very low risk" in gbs(base | {"urea": 6.4, "hemoglobin": 13}).interpretation
    assert gbs(base | {"urea": 6.5, "hemoglobin": 13}).value == 2
    assert gbs(base | {"urea": 25, "hemoglobin": 9.9}).value == 6 + 6
    assert gbs(base | {"urea": 5, "hemoglobin": 12.5, "sex": "female"}).value == 0  # women >= 12
    assert gbs(base | {"urea": 5, "hemoglobin": 12.5}).value == 1  # men 12-13
    assert gbs(base | {"urea": 5, "hemoglobin": 13, "systolic": 89}).value == 3


def test_meld_3_bounds_and_cap() -> None:
    meld = CALCULATORS.get("meld_3")
    low = meld(sex="male", bilirubin=0.5, sodium=140, inr=0.9, creatinine=0.6, albumin=4.0)
    assert low.value == 6  # every term at its bound: 6
    dialysis = meld(
        sex="male", bilirubin=1, sodium=137, inr=1, creatinine=1.0, albumin=3.5, dialysis=True
    )
    assert dialysis.details["bounded_inputs"]["cr"] == 3.0
    top = meld(sex="female", bilirubin=40, sodium=120, inr=6, creatinine=5, albumin=1.0)
    assert top.value == 40 and top.details["unrounded"] > 40


def test_sirs_thresholds_are_strict() -> None:
    out = calc("sirs", temperature=38.0, heart_rate=90, respiratory_rate=20, wbc=12)
    assert out.value == 0
    assert calc("sirs", temperature=36, heart_rate=91, respiratory_rate=20, wbc=4).value == 1


def test_framingham_hard_chd_range_and_smoking_cap() -> None:
    with pytest.raises(ToolInputError, match="30–79 years"):
        calc("framingham_hard_chd", age=80, sex="male", total_cholesterol=200, hdl=50, systolic=120)
    # men: ln(age) x smoker held at ln(70) above 70, so the smoking term stops shrinking
    older = calc(
        "framingham_hard_chd",
        age=75,
        sex="male",
        total_cholesterol=200,
        hdl=50,
        systolic=120,
        smoker=True,
    )
    assert older.value > 0 and older.warnings


def test_fluids_and_target_weight_refuse_out_of_range() -> None:
    assert calc("maintenance_fluids", weight=8).value == 32.0
    assert calc("maintenance_fluids", weight=15).value == 50.0
    with pytest.raises(ToolInputError, match="weight"):
        calc("maintenance_fluids", weight=-3)
    with pytest.raises(ToolInputError, match="target_bmi"):
        calc("target_weight", target_bmi=70, height=170)


def test_feverpain_and_conception_date_readings() -> None:
    assert (
        "62-65%"
        in calc(
            "feverpain",
            **dict.fromkeys(
                ["fever", "purulence", "attend_rapidly", "inflamed_tonsils", "no_cough_or_coryza"],
                True,
            ),
        ).interpretation
    )
    out = CALCULATORS.get("conception_date")(last_menstrual_period="2026-01-10")
    assert out.details["due_date"] == "2026-10-17"  # 14 + 266 = 280 days after the LMP
    with pytest.raises(ToolInputError, match="cycle_length"):
        calc("conception_date", last_menstrual_period="2026-01-10", cycle_length=60)
