"""Every calculator against worked examples.

Where the primary publication prints an example it is quoted (source in the comment); otherwise
the expected value is worked by hand from the published formula, and the arithmetic is written
out in the comment so a reviewer can redo it.
"""

from __future__ import annotations

import pytest

from medmllm.agent.tools.calculators import CALCULATORS
from medmllm.agent.tools.units import convert
from medmllm.errors import ToolInputError

# (calculator, inputs, expected value, absolute tolerance) — comment = source / hand working.
CASES: list[tuple[str, dict, object, float]] = [
    # WHO TRS 894: 70 kg / 1.75 m^2 = 22.857
    ("bmi", {"weight": 70, "height": 175}, 22.86, 0.01),
    # unit conversion: 154 lb = 69.853 kg, 69 in = 175.26 cm -> 69.853/1.7526^2 = 22.74
    ("bmi", {"weight": "154 lb", "height": "69 in"}, 22.74, 0.01),
    # Mosteller 1987: sqrt(180 * 80 / 3600) = sqrt(4) = 2.000
    ("bsa_mosteller", {"weight": 80, "height": 180}, 2.0, 0.001),
    # Devine 1974: man 70 in -> 50 + 2.3 * 10 = 73.0 kg
    ("ideal_body_weight", {"sex": "male", "height": "70 in"}, 73.0, 0.05),
    # woman 64 in -> 45.5 + 2.3 * 4 = 54.7 kg
    ("ideal_body_weight", {"sex": "female", "height": "64 in"}, 54.7, 0.05),
    # MAP 120/80: 80 + 40/3 = 93.3
    ("mean_arterial_pressure", {"systolic": 120, "diastolic": 80}, 93.3, 0.05),
    # Emmett & Narins: 140 - (100 + 24) = 16
    ("anion_gap", {"sodium": 140, "chloride": 100, "bicarbonate": 24}, 16.0, 0.01),
    # Payne 1973: 8.0 + 0.8 * (4.0 - 2.0) = 9.6 mg/dL
    ("corrected_calcium", {"calcium": 8.0, "albumin": 2.0}, 9.6, 0.01),
    # SI: 2.0 mmol/L = 8.016 mg/dL, 20 g/L = 2.0 g/dL -> 8.016 + 1.6 = 9.616
    ("corrected_calcium", {"calcium": "2.0 mmol/L", "albumin": "20 g/L"}, 9.62, 0.01),
    # Katz 1973: 130 + 1.6 * (600 - 100)/100 = 138
    ("corrected_sodium", {"sodium": 130, "glucose": 600}, 138.0, 0.05),
    # Hillier 1999: 130 + 2.4 * 5 = 142
    ("corrected_sodium", {"sodium": 130, "glucose": 600, "method": "hillier"}, 142.0, 0.05),
    # Dorwart 1975: 2 * 140 + 90/18 + 14/2.8 = 280 + 5 + 5 = 290
    ("serum_osmolality", {"sodium": 140, "glucose": 90, "bun": 14}, 290.0, 0.05),
    # Adrogue & Madias 2000: man 40 y, 70 kg: TBW 0.6*70 = 42 L; 42 * (160/140 - 1) = 6.0 L
    ("free_water_deficit", {"sodium": 160, "weight": 70, "sex": "male", "age": 40}, 6.0, 0.01),
    # elderly woman: 0.45 * 60 = 27 L; 27 * (154/140 - 1) = 2.7 L
    ("free_water_deficit", {"sodium": 154, "weight": 60, "sex": "female", "age": 80}, 2.7, 0.01),
    # Matthews 1985: insulin 10 uU/mL x glucose 5.0 mmol/L / 22.5 = 2.22
    ("homa_ir", {"glucose": "5.0 mmol/L", "insulin": 10}, 2.22, 0.01),
    # insulin 60 pmol/L = 10 uU/mL (6 pmol/L per uU/mL); glucose 90.08 mg/dL = 5.0 mmol/L
    ("homa_ir", {"glucose": 90.08, "insulin": "60 pmol/L"}, 2.22, 0.01),
    # Espinel 1976: (20 * 2.0) / (140 * 100) * 100 = 0.286 %
    (
        "fena",
        {
            "urine_sodium": 20,
            "plasma_sodium": 140,
            "urine_creatinine": 100,
            "plasma_creatinine": 2.0,
        },
        0.29,
        0.01,
    ),
    # auto weight (Winter 2012 / MDCalc): 100 kg, 175 cm -> BMI 32.7 >= 25 -> adjusted weight:
    # IBW 50 + 2.3 * (68.90 - 60) = 70.47; 70.47 + 0.4 * 29.53 = 82.28; 80 * 82.28 / 72 = 91.4
    (
        "cockcroft_gault",
        {"age": 60, "weight": 100, "height": 175, "sex": "male", "creatinine": 1.0},
        91.4,
        0.05,
    ),
    # Cockcroft-Gault: (140 - 60) * 72 / (72 * 1.0) = 80 mL/min
    ("cockcroft_gault", {"age": 60, "weight": 72, "sex": "male", "creatinine": 1.0}, 80.0, 0.05),
    # creatinine 88.4 umol/L = 1.0 mg/dL; woman: 80 * 0.85 = 68
    (
        "cockcroft_gault",
        {"age": 60, "weight": 72, "sex": "female", "creatinine": "88.4 umol/L"},
        68.0,
        0.05,
    ),
    # Inker 2021: man 50 y, Scr 1.0: 142 * (1.0/0.9)^-1.200 * 0.9938^50 = 142*0.8812*0.7328 = 91.7
    ("egfr_ckd_epi_2021", {"age": 50, "sex": "male", "creatinine": 1.0}, 91.7, 0.1),
    # woman 60 y, Scr 0.6: 142 * (0.6/0.7)^-0.241 * 0.9938^60 * 1.012 = 142*1.0379*0.6888*1.012
    ("egfr_ckd_epi_2021", {"age": 60, "sex": "female", "creatinine": 0.6}, 102.7, 0.1),
    # Levey 2006: 175 * 1.0^-1.154 * 60^-0.203 = 175 * 0.4355 = 76.2
    ("egfr_mdrd", {"age": 60, "sex": "male", "creatinine": 1.0}, 76.2, 0.1),
    # woman: 76.2 * 0.742 = 56.6
    ("egfr_mdrd", {"age": 60, "sex": "female", "creatinine": 1.0}, 56.6, 0.1),
    # Bazett: QT 400 ms at HR 75 (RR 0.8 s): 400 / sqrt(0.8) = 447.2
    ("qtc", {"qt": 400, "heart_rate": 75}, 447.2, 0.05),
    # Rautaharju 2014: 400 x (120 + 75) / 180 = 433.3
    ("qtc", {"qt": 400, "heart_rate": 75, "formula": "rautaharju"}, 433.3, 0.05),
    # Fridericia: 400 / 0.8^(1/3) = 400 / 0.9283 = 430.9
    ("qtc", {"qt": 400, "heart_rate": 75, "formula": "fridericia"}, 430.9, 0.05),
    # Framingham (Sagie 1992): 400 + 154 * (1 - 0.8) = 430.8
    ("qtc", {"qt": 400, "heart_rate": 75, "formula": "framingham"}, 430.8, 0.05),
    # Hodges: 400 + 1.75 * (75 - 60) = 426.25; QT in seconds converts: 0.4 s = 400 ms
    ("qtc", {"qt": "0.4 s", "heart_rate": 75, "formula": "hodges"}, 426.2, 0.06),
    # Lip 2010: woman 76 with hypertension: age>=75 2 + female 1 + HTN 1 = 4
    ("cha2ds2_vasc", {"age": 76, "sex": "female", "hypertension": True}, 4, 0),
    # man 68 with diabetes, prior TIA: age 65-74 1 + DM 1 + stroke/TIA 2 = 4
    (
        "cha2ds2_vasc",
        {"age": 68, "sex": "male", "diabetes": True, "stroke_tia_thromboembolism": True},
        4,
        0,
    ),
    ("cha2ds2_vasc", {"age": 50, "sex": "male"}, 0, 0),
    # Pisters 2010: H + S + E + D = 4
    ("has_bled", {"hypertension": True, "stroke": True, "elderly": True, "drugs": True}, 4, 0),
    # Wells 2000: DVT signs 3 + HR>100 1.5 + cancer 1 = 5.5
    ("wells_pe", {"dvt_signs": True, "heart_rate_over_100": True, "malignancy": True}, 5.5, 0),
    # Wells 2003: cancer 1 + calf 1 + pitting 1 - 2 alternative = 1
    (
        "wells_dvt",
        {
            "active_cancer": True,
            "calf_swelling_over_3cm": True,
            "pitting_edema": True,
            "alternative_diagnosis_likely": True,
        },
        1,
        0,
    ),
    # Kline 2004: all criteria absent -> 0 positive (PERC negative)
    ("perc", {"age": 35, "heart_rate": 80, "oxygen_saturation": 98}, 0, 0),
    # age 52 and SaO2 0.93 (fraction -> 93%): 2 positive
    ("perc", {"age": 52, "heart_rate": 80, "oxygen_saturation": "0.93 fraction"}, 2, 0),
    # Lim 2003: confusion 1, urea 9 mmol/L 1, RR 32 1, BP 85/50 1, age 70 1 = 5
    (
        "curb65",
        {
            "confusion": True,
            "urea": 9,
            "respiratory_rate": 32,
            "systolic": 85,
            "diastolic": 50,
            "age": 70,
        },
        5,
        0,
    ),
    # BUN 28 mg/dL = 28 / 2.801 = 10.0 mmol/L urea -> 1; age 66 -> 1; others 0 = 2
    (
        "curb65",
        {"bun": "28 mg/dL", "respiratory_rate": 18, "systolic": 130, "diastolic": 80, "age": 66},
        2,
        0,
    ),
    # Seymour 2016: RR 24 1 + SBP 95 1 + mentation 0 = 2
    ("qsofa", {"respiratory_rate": 24, "systolic": 95}, 2, 0),
    # Vincent 1996 Table 1: P/F 250 -> 2; plt 80 -> 2; bili 2.5 -> 2; MAP 65 -> 1; GCS 13 -> 1;
    # creatinine 1.5 -> 1; total 9
    (
        "sofa",
        {
            "pao2_fio2": 250,
            "platelets": 80,
            "bilirubin": 2.5,
            "map": 65,
            "gcs": 13,
            "creatinine": 1.5,
        },
        9,
        0,
    ),
    # ventilated P/F 90 -> 4, norepinephrine 0.2 -> 4, urine 150 mL/day -> 4; rest 0 = 12
    (
        "sofa",
        {
            "pao2_fio2": 90,
            "respiratory_support": True,
            "platelets": 200,
            "bilirubin": 0.5,
            "map": 60,
            "vasopressor": "dopamine_gt15_or_epi_norepi_gt0.1",
            "gcs": 15,
            "creatinine": 0.8,
            "urine_output": 150,
        },
        12,
        0,
    ),
    # Pugh 1973: bili 2.5 (2) + albumin 3.0 (2) + INR 1.5 (1) + mild ascites (2) + none (1) = 8 (B)
    (
        "child_pugh",
        {"bilirubin": 2.5, "albumin": 3.0, "inr": 1.5, "ascites": "mild", "encephalopathy": "none"},
        8,
        0,
    ),
    # bilirubin 51.3 umol/L = 3.0 mg/dL (2); albumin 25 g/L (3); INR 2.5 (3); ascites 3; enc 2 = 13
    (
        "child_pugh",
        {
            "bilirubin": "51.3 umol/L",
            "albumin": "25 g/L",
            "inr": 2.5,
            "ascites": "moderate_severe",
            "encephalopathy": "grade_1_2",
        },
        13,
        0,
    ),
    # Kim 2008/UNOS: Cr 1.9, bili 4.2, INR 1.7: MELD(i) = 0.957 ln1.9 + 0.378 ln4.2 + 1.120 ln1.7
    # + 0.643 = 2.394 -> 2.4 -> 24; Na 129: 24 + 1.32*8 - 0.033*24*8 = 28.2 -> 28
    ("meld_na", {"creatinine": 1.9, "bilirubin": 4.2, "inr": 1.7, "sodium": 129}, 28, 0),
    # all at lower bounds: ln 1 = 0 -> MELD(i) 0.643 -> 0.6 -> 6 (<= 11: no sodium term)
    ("meld_na", {"creatinine": 0.7, "bilirubin": 0.5, "inr": 0.9, "sodium": 140}, 6, 0),
    # Sterling 2006: 50 * 40 / (200 * sqrt(36)) = 2000 / 1200 = 1.67
    ("fib4", {"age": 50, "ast": 40, "alt": 36, "platelets": 200}, 1.67, 0.005),
    # Six 2008: H 2 + E 1 + age 50 (1) + 3 risk factors (2) + troponin 2x ULN (1) = 7
    (
        "heart_score",
        {"history": 2, "ecg": 1, "age": 50, "risk_factors": 3, "troponin_ratio": 2.0},
        7,
        0,
    ),
    # Lee 1999: high-risk surgery + IHD + creatinine 2.5 mg/dL = 3
    ("rcri", {"high_risk_surgery": True, "ischemic_heart_disease": True, "creatinine": 2.5}, 3, 0),
    # creatinine 150 umol/L = 1.70 mg/dL: not > 2.0 -> 0
    ("rcri", {"creatinine": "150 umol/L"}, 0, 0),
    # McIsaac 1998: age 10 (+1) + fever + exudate = 3; age 50 (-1) + 4 criteria = 3
    ("centor_mcisaac", {"age": 10, "fever": True, "tonsillar_exudate_or_swelling": True}, 3, 0),
    (
        "centor_mcisaac",
        {
            "age": 50,
            "fever": True,
            "absence_of_cough": True,
            "tender_anterior_cervical_nodes": True,
            "tonsillar_exudate_or_swelling": True,
        },
        3,
        0,
    ),
    # Teasdale 1974: E2 V3 M5 = 10
    ("gcs", {"eye": 2, "verbal": 3, "motor": 5}, 10, 0),
    # Teasdale 2014: intubated, E2 V NT M5 -> no total; E + M = 7, written "7T"
    ("gcs", {"eye": 2, "verbal": "NT", "motor": 5}, "7T", 0),
    # Apgar 1953: 1 + 2 + 1 + 2 + 2 = 8
    ("apgar", {"appearance": 1, "pulse": 2, "grimace": 1, "activity": 2, "respiration": 2}, 8, 0),
    # Liu 2013 Table 1: prednisone 5 = dexamethasone 0.75 -> 40 mg prednisone = 6 mg dexamethasone
    (
        "steroid_conversion",
        {"drug": "prednisone", "dose": 40, "target": "dexamethasone"},
        6.0,
        0.01,
    ),
    # hydrocortisone 100 mg = 20 mg methylprednisolone (20 : 4)
    (
        "steroid_conversion",
        {"drug": "hydrocortisone", "dose": "100 mg", "target": "methylprednisolone"},
        20.0,
        0.01,
    ),
    # CDC 2022: oxycodone 30 mg/day x 1.5 = 45 MME/day
    ("opioid_conversion", {"drug": "oxycodone", "daily_dose": 30}, 45.0, 0.05),
    # fentanyl 25 ug/h x 2.4 = 60 MME/day
    ("opioid_conversion", {"drug": "fentanyl_transdermal", "daily_dose": 25}, 60.0, 0.05),
    # Naegele: LMP 2026-01-10 + 1 y - 3 m + 7 d = 2026-10-17
    ("due_date", {"last_menstrual_period": "2026-01-10", "on_date": "2026-03-01"}, "2026-10-17", 0),
    # 280 days: 2026-01-10 + 280 d = 2026-10-17 (same here); 35-day cycle: + 7 d = 2026-10-24
    (
        "due_date",
        {
            "last_menstrual_period": "2026-01-10",
            "method": "280_days",
            "cycle_length": 35,
            "on_date": "2026-03-01",
        },
        "2026-10-24",
        0,
    ),
    # Caprini 2005: age 65 (2) + major open surgery (2) + malignancy (2) + history of VTE (3) = 9
    (
        "caprini",
        {"age": 65, "factors": ["major_open_surgery_over_45_min", "malignancy", "history_of_vte"]},
        9,
        0,
    ),
    # D'Agostino 2008 worked example (Framingham Heart Study web page for the 2008 profile):
    # woman 61, TC 180, HDL 47, SBP 124 untreated, smoker, no diabetes -> 10.48 %
    (
        "framingham_cvd",
        {
            "age": 61,
            "sex": "female",
            "total_cholesterol": 180,
            "hdl": 47,
            "systolic": 124,
            "smoker": True,
        },
        10.48,
        0.05,
    ),
    # man 53, TC 161, HDL 55, SBP 125 treated, non-smoker, diabetic -> 15.6 %
    (
        "framingham_cvd",
        {
            "age": 53,
            "sex": "male",
            "total_cholesterol": 161,
            "hdl": 55,
            "systolic": 125,
            "treated_hypertension": True,
            "diabetes": True,
        },
        15.6,
        0.05,
    ),
    # --- issue 19: calculators added (worked by hand from the cited tables / formulas) ---
    # Holliday & Segar 1957, 4-2-1: 25 kg -> 4*10 + 2*10 + 1*5 = 65 mL/h
    ("maintenance_fluids", {"weight": 25}, 65.0, 0.05),
    # 70 kg -> 40 + 20 + 50 = 110 mL/h
    ("maintenance_fluids", {"weight": "154.32 lb"}, 110.0, 0.05),
    # target BMI 22 at 175 cm: 22 * 1.75^2 = 67.375 kg
    ("target_weight", {"target_bmi": 22, "height": 175}, 67.4, 0.05),
    # Blatchford 2000 Table 2: man, urea 9 mmol/L (3), Hb 11 g/dL (3), SBP 95 (2), pulse 110 (1),
    # melaena (1) = 10
    (
        "glasgow_blatchford",
        {
            "urea": 9,
            "hemoglobin": 11,
            "sex": "male",
            "systolic": 95,
            "heart_rate": 110,
            "melena": True,
        },
        10,
        0,
    ),
    # woman, BUN 30 mg/dL = 10.7 mmol/L urea (4), Hb 105 g/L = 10.5 g/dL (1), SBP 120, pulse 80 = 5
    (
        "glasgow_blatchford",
        {
            "bun": "30 mg/dL",
            "hemoglobin": "105 g/L",
            "sex": "female",
            "systolic": 120,
            "heart_rate": 80,
        },
        5,
        0,
    ),
    # Knaus 1985 Figure 1: temp 39.2 (3), MAP 90/50 -> 63.3 (2), HR 125 (2), RR 28 (1), FiO2 40% so
    # PaO2 65 (1), pH 7.30 (2), Na 132 (0), K 3.2 (1), Cr 2.1 (3), Hct 33 (0), WBC 18 (1),
    # GCS 13 (2): APS 18; age 67 (5); immunocompromised, non-operative (5) = 28
    (
        "apache_ii",
        {
            "age": 67,
            "temperature": 39.2,
            "systolic": 90,
            "diastolic": 50,
            "heart_rate": 125,
            "respiratory_rate": 28,
            "fio2": 40,
            "pao2": 65,
            "ph": 7.30,
            "sodium": 132,
            "potassium": 3.2,
            "creatinine": 2.1,
            "hematocrit": 33,
            "wbc": 18,
            "gcs": 13,
            "severe_organ_insufficiency_or_immunocompromised": True,
        },
        28,
        0,
    ),
    # Fine 1997 Table 2: man 70 (70) + nursing home 10 + CHF 10 + RR 32 (20) + BUN 35 mg/dL (20)
    # = 130 -> class IV
    (
        "psi_port",
        {
            "age": 70,
            "sex": "male",
            "nursing_home_resident": True,
            "congestive_heart_failure": True,
            "respiratory_rate": 32,
            "systolic": 120,
            "temperature": 37,
            "heart_rate": 100,
            "ph": 7.40,
            "bun": 35,
            "sodium": 138,
            "glucose": 110,
            "hematocrit": 40,
            "pao2": 80,
        },
        130,
        0,
    ),
    # Charlson 1987/1994: age 65 (2) + diabetes with end-organ damage (2) + CHF (1) = 5
    (
        "charlson",
        {"age": 65, "conditions": ["diabetes_end_organ_damage", "congestive_heart_failure"]},
        5,
        0,
    ),
    # Little 2013: fever + purulence + no cough/coryza = 3
    ("feverpain", {"fever": True, "purulence": True, "no_cough_or_coryza": True}, 3, 0),
    # Friedewald 1972: 200 - 50 - 150/5 = 120 mg/dL
    ("ldl_friedewald", {"total_cholesterol": 200, "hdl": 50, "triglycerides": 150}, 120.0, 0.05),
    # SI: TC 5.2 mmol/L = 201.1, HDL 1.3 = 50.27, TG 1.7 mmol/L = 150.57 -> 120.7 mg/dL
    (
        "ldl_friedewald",
        {"total_cholesterol": "5.2 mmol/L", "hdl": "1.3 mmol/L", "triglycerides": "1.7 mmol/L"},
        120.7,
        0.05,
    ),
    # ATP III (JAMA 2001) point tables bracket the continuous model: man 55 (8), TC 213 at 50-59
    # (3), HDL 50 (0), SBP 120 untreated (0), non-smoker = 11 points = 8% (10 points = 6%); the
    # model: 52.00961 ln55 + 20.014077 ln213 - 0.905964 ln50 + 1.305784 ln120
    # - 4.605038 ln55 ln213 - 2.93323 ln55^2 - 172.300168 -> 1 - 0.9402^exp(L) = 6.5%
    (
        "framingham_hard_chd",
        {"age": 55, "sex": "male", "total_cholesterol": 213, "hdl": 50, "systolic": 120},
        6.5,
        0.05,
    ),
    # woman 60 (10), TC 220 at 60-69 (2), smoker at 60-69 (2), HDL 45 (1), SBP 135 treated (5)
    # = 20 points = 11% (19 points = 8%); the continuous model (women's coefficients, baseline
    # survival 0.98767): 9.6%
    (
        "framingham_hard_chd",
        {
            "age": 60,
            "sex": "female",
            "total_cholesterol": 220,
            "hdl": 45,
            "systolic": 135,
            "treated_hypertension": True,
            "smoker": True,
        },
        9.6,
        0.05,
    ),
    # Bone 1992: T 38.5 (1) + HR 95 (1) + RR 18 (0) + WBC 13 (1) = 3 criteria
    ("sirs", {"temperature": 38.5, "heart_rate": 95, "respiratory_rate": 18, "wbc": 13}, 3, 0),
    # 101.3 F = 38.5 C (1); HR 80; RR 18 but PaCO2 30 (1); WBC 3,500 cells/uL = 3.5 (1) = 3
    (
        "sirs",
        {
            "temperature": "101.3 degrees Fahrenheit",
            "heart_rate": "80 beats per minute",
            "respiratory_rate": "18 breaths per minute",
            "paco2": 30,
            "wbc": "3500 cells/µL",
        },
        3,
        0,
    ),
    # Wrenn 1990: Na 140, Cl 100, HCO3 14: AG 26, delta gap 26 - 12 = 14
    ("delta_gap", {"sodium": 140, "chloride": 100, "bicarbonate": 14}, 14.0, 0.01),
    # Rastegar 2007: (26 - 12) / (24 - 14) = 1.4
    ("delta_ratio", {"sodium": 140, "chloride": 100, "bicarbonate": 14}, 1.4, 0.005),
    # Figge 1998: Na 140, Cl 105, HCO3 20: AG 15 + 2.5 * (4.0 - 2.0) = 20
    (
        "albumin_corrected_anion_gap",
        {"sodium": 140, "chloride": 105, "bicarbonate": 20, "albumin": 2.0},
        20.0,
        0.01,
    ),
    # corrected AG 20 - 12 = 8
    (
        "albumin_corrected_delta_gap",
        {"sodium": 140, "chloride": 105, "bicarbonate": 20, "albumin": "20 g/L"},
        8.0,
        0.01,
    ),
    # 8 / (24 - 20) = 2.0
    (
        "albumin_corrected_delta_ratio",
        {"sodium": 140, "chloride": 105, "bicarbonate": 20, "albumin": 2.0},
        2.0,
        0.005,
    ),
    # ACOG 2017: LMP 2026-01-10 + 14 days = 2026-01-24; 35-day cycle: + 21 days = 2026-01-31
    ("conception_date", {"last_menstrual_period": "2026-01-10"}, "2026-01-24", 0),
    (
        "conception_date",
        {"last_menstrual_period": "2026-01-10", "cycle_length": 35},
        "2026-01-31",
        0,
    ),
    # Kim 2021: woman, bili 3.0, Na 130, INR 1.8, Cr 1.5, albumin 2.8: 1.33 + 4.56 ln3 (5.010)
    # + 0.82*7 (5.740) - 0.24*7*ln3 (-1.846) + 9.09 ln1.8 (5.343) + 11.14 ln1.5 (4.517)
    # + 1.85*0.7 (1.295) - 1.83*0.7*ln1.5 (-0.519) + 6 = 26.87 -> 27
    (
        "meld_3",
        {
            "sex": "female",
            "bilirubin": 3.0,
            "sodium": 130,
            "inr": 1.8,
            "creatinine": 1.5,
            "albumin": 2.8,
        },
        27,
        0,
    ),
    # Brott 1989 / Lyden 1994: 1+1+0+1+2+2+3+0+2+0+0+1+2+1+1 = 17 (moderate to severe)
    (
        "nihss",
        {
            "loc": 1,
            "loc_questions": 1,
            "loc_commands": 0,
            "best_gaze": 1,
            "visual_fields": 2,
            "facial_palsy": 2,
            "motor_left_arm": 3,
            "motor_right_arm": 0,
            "motor_left_leg": 2,
            "motor_right_leg": 0,
            "limb_ataxia": 0,
            "sensory": 1,
            "best_language": 2,
            "dysarthria": 1,
            "extinction_inattention": 1,
        },
        17,
        0,
    ),
]


@pytest.mark.parametrize(("name", "inputs", "expected", "tol"), CASES)
def test_worked_example(name: str, inputs: dict, expected: object, tol: float) -> None:
    result = CALCULATORS.get(name)(inputs)
    if isinstance(expected, str):
        assert result.value == expected
    else:
        assert result.value == pytest.approx(expected, abs=tol)
    assert result.citation and result.interpretation


def test_every_calculator_has_a_worked_example() -> None:
    assert set(CALCULATORS.names()) == {c[0] for c in CASES}


def test_details_carry_secondary_results() -> None:
    ag = CALCULATORS.get("anion_gap")(sodium=140, chloride=100, bicarbonate=24, albumin=2.0)
    assert ag.details["albumin_corrected_anion_gap"] == pytest.approx(21.0)  # 16 + 2.5 * 2
    ibw = CALCULATORS.get("ideal_body_weight")(sex="male", height="70 in", weight=100)
    assert ibw.details["adjusted_body_weight_kg"] == pytest.approx(83.8)  # 73 + 0.4 * 27
    ga = CALCULATORS.get("due_date")(last_menstrual_period="2026-01-10", on_date="2026-03-01")
    assert (ga.details["gestational_age_weeks"], ga.details["gestational_age_days"]) == (7, 1)
    child = CALCULATORS.get("child_pugh")(
        bilirubin=2.5, albumin=3.0, inr=1.5, ascites="mild", encephalopathy="none"
    )
    assert child.details["class"] == "B"


def test_out_of_range_names_range_and_unit() -> None:
    with pytest.raises(ToolInputError) as err:
        CALCULATORS.get("cockcroft_gault")(age=60, weight=72, sex="male", creatinine=88)
    msg = err.value.message
    assert "creatinine" in msg and "0.1–20 mg/dL" in msg and "umol/L" in msg


def test_wrong_unit_lists_accepted_units() -> None:
    with pytest.raises(ToolInputError) as err:
        CALCULATORS.get("bmi")(weight="70 mmHg", height=170)
    assert "mmHg" in err.value.message and "kg" in err.value.message and "lb" in err.value.message


def test_missing_value_is_named_and_never_invented() -> None:
    with pytest.raises(ToolInputError) as err:
        CALCULATORS.get("cockcroft_gault")(age=60, sex="male", creatinine=1.0)
    assert "weight: required value is missing" in err.value.message
    assert "ask the user for weight" in (err.value.hint or "")


def test_unknown_input_and_bad_enum() -> None:
    with pytest.raises(ToolInputError, match="not an input"):
        CALCULATORS.get("gcs")(eye=4, verbal=5, motor=6, pupils=3)
    with pytest.raises(ToolInputError, match="motor"):
        CALCULATORS.get("gcs")(eye=4, verbal=5, motor=7)


def test_logical_checks() -> None:
    with pytest.raises(ToolInputError, match="below systolic"):
        CALCULATORS.get("mean_arterial_pressure")(systolic=80, diastolic=120)
    with pytest.raises(ToolInputError, match="before the last menstrual period"):
        CALCULATORS.get("due_date")(last_menstrual_period="2026-05-01", on_date="2026-01-01")


def test_unknown_calculator_did_you_mean() -> None:
    from medmllm.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="cha2ds2_vasc"):
        CALCULATORS.get("cha2ds2vasc")


@pytest.mark.parametrize("name", CALCULATORS.names())
def test_schema_is_tool_ready(name: str) -> None:
    calc = CALCULATORS.get(name)
    schema = calc.parameters_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert calc.description and calc.citation
    for prop, spec in schema["properties"].items():
        assert spec.get("description") or "$ref" in spec or "items" in spec, (name, prop)


def test_unit_conversions() -> None:
    assert convert(1.0, "mg/dL", "umol/L", "creatinine") == pytest.approx(88.4)
    assert convert(100, "mg/dL", "mmol/L", "glucose") == pytest.approx(5.5506, rel=1e-4)
    assert convert(154, "lb", "kg", "mass") == pytest.approx(69.853, rel=1e-4)
    assert convert(69, "in", "cm", "length") == pytest.approx(175.26)
    assert convert(98.6, "F", "C", "temperature") == pytest.approx(37.0)
    assert convert(1.0, "mg/dL", "umol/L", "bilirubin") == pytest.approx(17.104)
    with pytest.raises(ToolInputError, match="accepted"):
        convert(1, "kg", "mmol/L", "mass")
    with pytest.raises(ToolInputError, match="unknown quantity"):
        convert(1, "kg", "g", "weight")
