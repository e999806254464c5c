"""Cardiology: QTc, CHA2DS2-VASc, HAS-BLED, HEART score, RCRI, Framingham 10-year CVD and hard
CHD risk, LDL cholesterol (Friedewald)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator
from medmllm.agent.tools.calculators.fields import Sex
from medmllm.agent.tools.units import from_canonical


class QTcInputs(Inputs):
    qt: Annotated[float, Q("interval", 150, 800, "Measured QT interval")]
    heart_rate: Annotated[float, Q("rate", 20, 300, "Heart rate")]
    formula: Literal["bazett", "fridericia", "framingham", "hodges", "rautaharju"] = Field(
        "bazett", description="Correction formula for the main value (all five are in details)."
    )
    sex: Sex | None = Field(
        None, description="Sex, for the prolongation threshold (>=450 ms men, >=460 ms women)."
    )


# AHA/ACCF/HRS 2009 (Rautaharju et al., Part IV): QTc prolonged at >= 450 ms in men, >= 460 ms
# in women; >500 ms: the high-risk threshold of the AHA 2010 torsade statement (Drew et al.).
QTC_PROLONGED_MS = {"male": 450.0, "female": 460.0}
QTC_HIGH_RISK_MS = 500.0


def _qtc_reading(value: float, sex: Sex | None) -> str:
    if value > QTC_HIGH_RISK_MS:
        return "prolonged (>500 ms: high torsades risk)"
    if sex is None:
        if value >= QTC_PROLONGED_MS["male"]:
            return (
                "prolonged in a man (>=450 ms); in a woman prolonged from 460 ms "
                "(give sex for one reading)"
            )
        return "not prolonged"
    limit = QTC_PROLONGED_MS[sex]
    if value >= limit:
        return f"prolonged for a {'man' if sex == 'male' else 'woman'} (>={limit:g} ms)"
    return f"not prolonged (<{limit:g} ms for a {'man' if sex == 'male' else 'woman'})"


@calculator(
    "qtc",
    title="Corrected QT interval (Bazett, Fridericia, Framingham, Hodges, Rautaharju)",
    unit="ms",
    citation="Bazett HC. Heart 1920;7:353-370 (QT/sqrt(RR)); Fridericia LS. Acta Med Scand "
    "1920;53:469-486 (QT/RR^(1/3)); Sagie A et al. Am J Cardiol 1992;70:797-801 "
    "(Framingham: QT + 154 x (1 - RR)); Hodges M et al. J Am Coll Cardiol 1983;1:694 "
    "(QT + 1.75 x (HR - 60)); Rautaharju PM, Mason JW, Akiyama T. Int J Cardiol "
    "2014;174:535-540 (QT x (120 + HR) / 180). RR in seconds = 60 / HR. Thresholds: Rautaharju "
    "PM, Surawicz B, Gettes LS. AHA/ACCF/HRS recommendations for the standardization and "
    "interpretation of the electrocardiogram, part IV. Circulation 2009;119:e241-e250 "
    "(prolonged >= 450 ms men, >= 460 ms women); Drew BJ et al. Circulation 2010;121:1047-1060 "
    "(> 500 ms high risk).",
)
def qtc(x: QTcInputs) -> Outcome:
    """Heart-rate-corrected QT (ms) by Bazett, Fridericia, Framingham, Hodges or Rautaharju; RR =
    60/HR s; read against sex-specific limits."""
    rr = 60.0 / x.heart_rate
    values = {
        "bazett": x.qt / math.sqrt(rr),
        "fridericia": x.qt / rr ** (1 / 3),
        "framingham": x.qt + 154 * (1 - rr),
        "hodges": x.qt + 1.75 * (x.heart_rate - 60),
        "rautaharju": x.qt * (120 + x.heart_rate) / 180,
    }
    value = values[x.formula]
    details = {k: round(v, 1) for k, v in values.items()} | {"rr_s": round(rr, 3)}
    return Outcome(round(value, 1), _qtc_reading(value, x.sex), details)


class Cha2ds2VascInputs(Inputs):
    age: Annotated[float, Q("age", 18, 120, "Age")]
    sex: Sex = Field(description="Sex (female = 1 point).")
    congestive_heart_failure: bool = Field(False, description="CHF or LV dysfunction (1).")
    hypertension: bool = Field(False, description="Hypertension (1).")
    diabetes: bool = Field(False, description="Diabetes mellitus (1).")
    stroke_tia_thromboembolism: bool = Field(False, description="Prior stroke/TIA/TE (2).")
    vascular_disease: bool = Field(False, description="Prior MI, PAD or aortic plaque (1).")


@calculator(
    "cha2ds2_vasc",
    title="CHA2DS2-VASc stroke risk in atrial fibrillation",
    unit="points",
    citation="Lip GYH, Nieuwlaat R, Pisters R, Lane DA, Crijns HJGM. Refining clinical risk "
    "stratification for predicting stroke and thromboembolism in atrial fibrillation using a "
    "novel risk factor-based approach. Chest 2010;137:263-272.",
)
def cha2ds2_vasc(x: Cha2ds2VascInputs) -> Outcome:
    """CHA2DS2-VASc: CHF 1, hypertension 1, age >=75 2, diabetes 1, stroke/TIA 2, vascular 1, age
    65-74 1, female 1."""
    score = (
        int(x.congestive_heart_failure)
        + int(x.hypertension)
        + (2 if x.age >= 75 else 1 if x.age >= 65 else 0)
        + int(x.diabetes)
        + 2 * int(x.stroke_tia_thromboembolism)
        + int(x.vascular_disease)
        + int(x.sex == "female")
    )
    male_equiv = score - int(x.sex == "female")
    text = (
        "low risk: no anticoagulation"
        if male_equiv == 0
        else (
            "consider oral anticoagulation"
            if male_equiv == 1
            else "oral anticoagulation recommended"
        )
    )
    return Outcome(score, text + " (ESC 2020 AF guideline thresholds)")


class HasBledInputs(Inputs):
    hypertension: bool = Field(False, description="Uncontrolled, systolic >160 mmHg (1).")
    abnormal_renal_function: bool = Field(
        False, description="Dialysis, transplant, creatinine >=200 µmol/L (1)."
    )
    abnormal_liver_function: bool = Field(
        False, description="Cirrhosis or bilirubin >2x ULN with AST/ALT >3x ULN (1)."
    )
    stroke: bool = Field(False, description="Prior stroke (1).")
    bleeding: bool = Field(False, description="Prior major bleeding or predisposition (1).")
    labile_inr: bool = Field(False, description="Labile INR, time in range <60% (1).")
    elderly: bool = Field(False, description="Age >65 years (1).")
    drugs: bool = Field(False, description="Antiplatelets or NSAIDs (1).")
    alcohol: bool = Field(False, description=">=8 drinks a week (1).")


@calculator(
    "has_bled",
    title="HAS-BLED major bleeding risk on anticoagulation",
    unit="points",
    citation="Pisters R, Lane DA, Nieuwlaat R, et al. A novel user-friendly score (HAS-BLED) to "
    "assess 1-year risk of major bleeding in patients with atrial fibrillation. Chest "
    "2010;138:1093-1100.",
)
def has_bled(x: HasBledInputs) -> Outcome:
    """HAS-BLED: one point each for H, A (renal, liver), S, B, L, E, D (drugs, alcohol)."""
    score = sum(int(v) for v in x.model_dump().values())
    text = (
        "high bleeding risk (>=3): review modifiable factors" if score >= 3 else "low to moderate"
    )
    return Outcome(score, text)


class HeartInputs(Inputs):
    history: Literal[0, 1, 2] = Field(description="0 slightly, 1 moderately, 2 highly suspicious.")
    ecg: Literal[0, 1, 2] = Field(
        description="0 normal, 1 non-specific repolarisation, 2 significant ST deviation."
    )
    age: Annotated[float, Q("age", 18, 120, "Age")]
    risk_factors: int = Field(
        ge=0,
        le=10,
        description="Number of risk factors (hypertension, hypercholesterolaemia, "
        "diabetes, obesity BMI>30, smoking, family history).",
    )
    atherosclerotic_disease: bool = Field(
        False, description="Known atherosclerotic disease (prior MI, PCI/CABG, stroke, PAD)."
    )
    troponin_ratio: float = Field(
        ge=0, le=1000, description="Initial troponin divided by the normal limit (1.0 = at limit)."
    )


@calculator(
    "heart_score",
    title="HEART score for major adverse cardiac events",
    unit="points",
    citation="Six AJ, Backus BE, Kelder JC. Chest pain in the emergency room: value of the HEART "
    "score. Neth Heart J 2008;16:191-196.",
)
def heart_score(x: HeartInputs) -> Outcome:
    """HEART: History 0-2, ECG 0-2, Age (<45 0, 45-64 1, >=65 2), Risk factors 0-2, Troponin 0-2."""
    age_pts = 2 if x.age >= 65 else 1 if x.age >= 45 else 0
    rf_pts = 2 if (x.risk_factors >= 3 or x.atherosclerotic_disease) else 1 if x.risk_factors else 0
    trop_pts = 2 if x.troponin_ratio > 3 else 1 if x.troponin_ratio > 1 else 0
    score = x.history + x.ecg + age_pts + rf_pts + trop_pts
    text = (
        "low risk (0-3): 6-week MACE ~2.5%"
        if score <= 3
        else ("moderate risk (4-6): ~20%" if score <= 6 else "high risk (7-10): ~73%")
    )
    return Outcome(score, text, {"age": age_pts, "risk_factors": rf_pts, "troponin": trop_pts})


class RCRIInputs(Inputs):
    high_risk_surgery: bool = Field(
        False, description="Intraperitoneal, intrathoracic or suprainguinal vascular surgery."
    )
    ischemic_heart_disease: bool = Field(False, description="History of ischaemic heart disease.")
    heart_failure: bool = Field(False, description="History of congestive heart failure.")
    cerebrovascular_disease: bool = Field(False, description="History of stroke or TIA.")
    insulin: bool = Field(False, description="Preoperative insulin treatment.")
    creatinine: Annotated[
        float, Q("creatinine", 0.1, 20, "Preoperative serum creatinine (>2.0 mg/dL scores 1)")
    ]


@calculator(
    "rcri",
    title="Revised Cardiac Risk Index (Lee)",
    unit="points",
    citation="Lee TH, Marcantonio ER, Mangione CM, et al. Derivation and prospective validation "
    "of a simple index for prediction of cardiac risk of major noncardiac surgery. Circulation "
    "1999;100:1043-1049.",
)
def rcri(x: RCRIInputs) -> Outcome:
    """RCRI: one point each for high-risk surgery, IHD, CHF, cerebrovascular disease, insulin,
    creatinine >2 mg/dL."""
    score = (
        int(x.high_risk_surgery)
        + int(x.ischemic_heart_disease)
        + int(x.heart_failure)
        + int(x.cerebrovascular_disease)
        + int(x.insulin)
        + int(x.creatinine > 2.0)
    )
    risk = {0: "0.4%", 1: "0.9%", 2: "6.6%"}.get(score, "11%")
    return Outcome(score, f"major cardiac complication rate {risk} in the validation cohort")


class FraminghamInputs(Inputs):
    age: Annotated[float, Q("age", 30, 74, "Age")]
    sex: Sex = Field(description="Sex.")
    total_cholesterol: Annotated[float, Q("cholesterol", 50, 600, "Total cholesterol")]
    hdl: Annotated[float, Q("cholesterol", 10, 150, "HDL cholesterol")]
    systolic: Annotated[float, Q("pressure", 70, 260, "Systolic blood pressure")]
    treated_hypertension: bool = Field(False, description="On antihypertensive treatment.")
    smoker: bool = Field(False, description="Current smoker.")
    diabetes: bool = Field(False, description="Diabetes.")


# D'Agostino 2008, Table 2: coefficients, mean of the linear predictor, 10-year baseline survival.
_FRAMINGHAM = {
    "female": (2.32888, 1.20904, -0.70833, 2.76157, 2.82263, 0.52873, 0.69154, 26.1931, 0.95012),
    "male": (3.06117, 1.12370, -0.93263, 1.93303, 1.99881, 0.65451, 0.57367, 23.9802, 0.88936),
}


@calculator(
    "framingham_cvd",
    title="Framingham general cardiovascular disease 10-year risk (2008)",
    unit="%",
    citation="D'Agostino RB Sr, Vasan RS, Pencina MJ, et al. General cardiovascular risk profile "
    "for use in primary care: the Framingham Heart Study. Circulation 2008;117:743-753 "
    "(Cox model, Table 2).",
)
def framingham_cvd(x: FraminghamInputs) -> Outcome:
    """10-year general CVD risk (%) from age, sex, cholesterol, HDL, SBP (treated or not), smoking,
    diabetes."""
    b_age, b_tc, b_hdl, b_sbp, b_sbp_t, b_smk, b_dm, mean, s0 = _FRAMINGHAM[x.sex]
    lp = (
        b_age * math.log(x.age)
        + b_tc * math.log(x.total_cholesterol)
        + b_hdl * math.log(x.hdl)
        + (b_sbp_t if x.treated_hypertension else b_sbp) * math.log(x.systolic)
        + b_smk * x.smoker
        + b_dm * x.diabetes
    )
    risk = 100 * (1 - s0 ** math.exp(lp - mean))
    text = "low (<10%)" if risk < 10 else "intermediate (10-20%)" if risk < 20 else "high (>=20%)"
    return Outcome(round(risk, 1), text, {"linear_predictor": round(lp, 4)})


class FraminghamChdInputs(Inputs):
    age: Annotated[float, Q("age", 30, 79, "Age")]
    sex: Sex = Field(description="Sex.")
    total_cholesterol: Annotated[float, Q("cholesterol", 50, 600, "Total cholesterol")]
    hdl: Annotated[float, Q("cholesterol", 10, 150, "HDL cholesterol")]
    systolic: Annotated[float, Q("pressure", 70, 260, "Systolic blood pressure")]
    treated_hypertension: bool = Field(False, description="On antihypertensive treatment.")
    smoker: bool = Field(False, description="Current smoker.")


# ATP III (NCEP 2001) Framingham hard-CHD model: coefficients of ln age, ln TC, ln HDL, ln SBP,
# treated BP, smoker, ln age x ln TC, ln age x smoker, ln age^2; constant; 10-year baseline
# survival; age above which ln(age) x smoker is held.
_FRAMINGHAM_CHD = {
    "male": (
        52.00961, 20.014077, -0.905964, 1.305784, 0.241549, 12.096316,
        -4.605038, -2.84367, -2.93323, -172.300168, 0.9402, 70.0,
    ),
    "female": (
        31.764001, 22.465206, -1.187731, 2.552905, 0.420251, 13.07543,
        -5.060998, -2.996945, 0.0, -146.5933061, 0.98767, 78.0,
    ),
}  # fmt: skip


@calculator(
    "framingham_hard_chd",
    title="Framingham 10-year risk of hard coronary heart disease (ATP III)",
    unit="%",
    citation="Expert Panel on Detection, Evaluation, and Treatment of High Blood Cholesterol in "
    "Adults. Executive Summary of the Third Report of the NCEP (Adult Treatment Panel III). JAMA "
    "2001;285:2486-2497 (Framingham hard CHD: myocardial infarction or coronary death; point "
    "tables); Wilson PWF et al. Circulation 1998;97:1837-1847; continuous form as given by "
    "MDCalc's 'Framingham Risk Score for Hard Coronary Heart Disease'.",
)
def framingham_hard_chd(x: FraminghamChdInputs) -> Outcome:
    """10-year risk (%) of myocardial infarction or coronary death (ATP III Framingham model) from
    age, sex, total and HDL cholesterol, SBP, treatment, smoking; for people without diabetes."""
    b = _FRAMINGHAM_CHD[x.sex]
    ln_age = math.log(x.age)
    ln_tc = math.log(x.total_cholesterol)
    smoker = float(x.smoker)
    lp = (
        b[0] * ln_age
        + b[1] * ln_tc
        + b[2] * math.log(x.hdl)
        + b[3] * math.log(x.systolic)
        + b[4] * x.treated_hypertension
        + b[5] * smoker
        + b[6] * ln_age * ln_tc
        + b[7] * math.log(min(x.age, b[11])) * smoker
        + b[8] * ln_age * ln_age
        + b[9]
    )
    risk = 100 * (1 - b[10] ** math.exp(lp))
    text = (
        "low (<10%)"
        if risk < 10
        else "intermediate (10-20%)"
        if risk <= 20
        else "high (>20%: a CHD risk equivalent in ATP III)"
    )
    return Outcome(
        round(risk, 1),
        text,
        {"linear_predictor": round(lp, 4)},
        ["not for people with diabetes or known CHD (ATP III counts them as CHD risk equivalents)"],
    )


class LdlInputs(Inputs):
    total_cholesterol: Annotated[float, Q("cholesterol", 50, 1000, "Total cholesterol")]
    hdl: Annotated[float, Q("cholesterol", 5, 200, "HDL cholesterol")]
    triglycerides: Annotated[float, Q("triglycerides", 10, 5000, "Triglycerides (fasting)")]

    @model_validator(mode="after")
    def _friedewald_range(self) -> LdlInputs:
        if self.triglycerides >= 400:
            raise ValueError(
                f"triglycerides {self.triglycerides:g} mg/dL are >= 400 mg/dL (4.5 mmol/L), "
                "where the Friedewald estimate is invalid: measure LDL directly"
            )
        if self.hdl >= self.total_cholesterol:
            raise ValueError(
                f"HDL {self.hdl:g} mg/dL must be below total cholesterol "
                f"{self.total_cholesterol:g} mg/dL"
            )
        return self


@calculator(
    "ldl_friedewald",
    title="LDL cholesterol (Friedewald)",
    unit="mg/dL",
    citation="Friedewald WT, Levy RI, Fredrickson DS. Estimation of the concentration of "
    "low-density lipoprotein cholesterol in plasma, without use of the preparative "
    "ultracentrifuge. Clin Chem 1972;18:499-502 (LDL = TC - HDL - TG/5 in mg/dL; invalid at "
    "TG >= 400 mg/dL).",
)
def ldl_friedewald(x: LdlInputs) -> Outcome:
    """LDL cholesterol (mg/dL) = total cholesterol - HDL - triglycerides / 5 (TG < 400 mg/dL)."""
    value = x.total_cholesterol - x.hdl - x.triglycerides / 5
    text = (
        "optimal (<100 mg/dL)"
        if value < 100
        else "near optimal (100-129)"
        if value < 130
        else "borderline high (130-159)"
        if value < 160
        else "high (160-189)"
        if value < 190
        else "very high (>=190 mg/dL)"
    )
    return Outcome(
        round(value, 1),
        f"{text} (ATP III categories)",
        {"ldl_mmol_l": round(from_canonical(value, "mmol/L", "cholesterol"), 2)},
    )
