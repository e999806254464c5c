"""Acute care scores: CURB-65, PSI/PORT, qSOFA, SOFA, Centor/McIsaac, FeverPAIN, APGAR."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator
from medmllm.agent.tools.calculators.fields import Sex, UreaOrBUN


class Curb65Inputs(UreaOrBUN):
    confusion: bool = Field(False, description="New mental confusion.")
    respiratory_rate: Annotated[float, Q("rate", 4, 80, "Respiratory rate")]
    systolic: Annotated[float, Q("pressure", 30, 300, "Systolic blood pressure")]
    diastolic: Annotated[float, Q("pressure", 10, 200, "Diastolic blood pressure")]
    age: Annotated[float, Q("age", 0, 120, "Age")]


@calculator(
    "curb65",
    title="CURB-65 severity of community-acquired pneumonia",
    unit="points",
    citation="Lim WS, van der Eerden MM, Laing R, et al. Defining community acquired pneumonia "
    "severity on presentation to hospital: an international derivation and validation study. "
    "Thorax 2003;58:377-382.",
)
def curb65(x: Curb65Inputs) -> Outcome:
    """CURB-65: confusion, urea >7 mmol/L (BUN >19.6 mg/dL), RR >=30, SBP <90 or DBP <=60, age >=65
    (1 point each)."""
    urea = x.urea_mmol_l
    assert urea is not None  # UreaOrBUN requires one of the two
    score = (
        int(x.confusion)
        + int(urea > 7)
        + int(x.respiratory_rate >= 30)
        + int(x.systolic < 90 or x.diastolic <= 60)
        + int(x.age >= 65)
    )
    mort = {0: "0.7%", 1: "3.2%", 2: "13.0%", 3: "17.0%", 4: "41.5%", 5: "57.0%"}[score]
    care = (
        "outpatient care"
        if score <= 1
        else "hospital care"
        if score == 2
        else ("severe pneumonia: consider ICU")
    )
    return Outcome(
        score,
        f"30-day mortality {mort} in the derivation cohorts; {care}",
        {"urea_mmol_l": round(urea, 2), "urea_given_as": x.given_as()},
    )


class QSofaInputs(Inputs):
    respiratory_rate: Annotated[float, Q("rate", 4, 80, "Respiratory rate")]
    systolic: Annotated[float, Q("pressure", 30, 300, "Systolic blood pressure")]
    altered_mentation: bool = Field(False, description="Altered mentation (GCS <15).")


@calculator(
    "qsofa",
    title="quick SOFA (qSOFA)",
    unit="points",
    citation="Seymour CW, Liu VX, Iwashyna TJ, et al. Assessment of clinical criteria for sepsis "
    "(Sepsis-3). JAMA 2016;315:762-774.",
)
def qsofa(x: QSofaInputs) -> Outcome:
    """qSOFA: respiratory rate >=22, altered mentation, systolic BP <=100 (1 point each)."""
    score = int(x.respiratory_rate >= 22) + int(x.altered_mentation) + int(x.systolic <= 100)
    text = (
        "high risk of poor outcome if infection is suspected (>=2)"
        if score >= 2
        else ("not high risk by qSOFA")
    )
    return Outcome(score, text)


Vasopressor = Literal[
    "none",
    "dopamine_le5_or_dobutamine",
    "dopamine_gt5_or_epi_norepi_le0.1",
    "dopamine_gt15_or_epi_norepi_gt0.1",
]


class SofaInputs(Inputs):
    pao2_fio2: float = Field(ge=20, le=700, description="PaO2/FiO2 ratio, mmHg.")
    respiratory_support: bool = Field(False, description="Mechanical ventilation / CPAP.")
    platelets: Annotated[float, Q("platelets", 0, 2000, "Platelet count")]
    bilirubin: Annotated[float, Q("bilirubin", 0.1, 60, "Serum bilirubin")]
    map: Annotated[float, Q("pressure", 10, 200, "Mean arterial pressure")]
    vasopressor: Vasopressor = Field(
        "none", description="Highest vasoactive support (µg/kg/min) for >=1 h."
    )
    gcs: int = Field(ge=3, le=15, description="Glasgow Coma Scale.")
    creatinine: Annotated[float, Q("creatinine", 0.1, 25, "Serum creatinine")]
    urine_output: Annotated[
        float | None, Q("volume_rate", 0, 20000, "Urine output per day, if known")
    ] = None


@calculator(
    "sofa",
    title="Sequential Organ Failure Assessment (SOFA)",
    unit="points",
    citation="Vincent JL, Moreno R, Takala J, et al. The SOFA (Sepsis-related Organ Failure "
    "Assessment) score to describe organ dysfunction/failure. Intensive Care Med "
    "1996;22:707-710 (Table 1).",
)
def sofa(x: SofaInputs) -> Outcome:
    """SOFA: six organ systems scored 0-4 (respiration, coagulation, liver, cardiovascular, CNS,
    renal)."""
    p = x.pao2_fio2
    resp = 0 if p >= 400 else 1 if p >= 300 else 2
    if x.respiratory_support and p < 200:
        resp = 4 if p < 100 else 3
    plt = x.platelets
    coag = 0 if plt >= 150 else 1 if plt >= 100 else 2 if plt >= 50 else 3 if plt >= 20 else 4
    b = x.bilirubin
    liver = 0 if b < 1.2 else 1 if b < 2.0 else 2 if b < 6.0 else 3 if b < 12.0 else 4
    cv = {
        "none": 1 if x.map < 70 else 0,
        "dopamine_le5_or_dobutamine": 2,
        "dopamine_gt5_or_epi_norepi_le0.1": 3,
        "dopamine_gt15_or_epi_norepi_gt0.1": 4,
    }[x.vasopressor]
    g = x.gcs
    cns = 0 if g == 15 else 1 if g >= 13 else 2 if g >= 10 else 3 if g >= 6 else 4
    c = x.creatinine
    renal = 0 if c < 1.2 else 1 if c < 2.0 else 2 if c < 3.5 else 3 if c < 5.0 else 4
    if x.urine_output is not None:
        renal = max(renal, 4 if x.urine_output < 200 else 3 if x.urine_output < 500 else 0)
    parts = {
        "respiration": resp,
        "coagulation": coag,
        "liver": liver,
        "cardiovascular": cv,
        "cns": cns,
        "renal": renal,
    }
    score = sum(parts.values())
    return Outcome(
        score, "an acute rise of >=2 points with infection defines sepsis (Sepsis-3)", parts
    )


class CentorInputs(Inputs):
    age: Annotated[float, Q("age", 3, 120, "Age (McIsaac: 3-14 +1, >=45 -1)")]
    fever: bool = Field(False, description="History of fever or temperature >38 °C.")
    absence_of_cough: bool = Field(False, description="No cough.")
    tender_anterior_cervical_nodes: bool = Field(
        False, description="Tender or swollen anterior cervical lymph nodes."
    )
    tonsillar_exudate_or_swelling: bool = Field(False, description="Tonsillar swelling/exudate.")


@calculator(
    "centor_mcisaac",
    title="Centor score with McIsaac age modification (streptococcal pharyngitis)",
    unit="points",
    citation="Centor RM et al. The diagnosis of strep throat in adults in the emergency room. "
    "Med Decis Making 1981;1:239-246; McIsaac WJ, White D, Tannenbaum D, Low DE. A clinical "
    "score to reduce unnecessary antibiotic use in patients with sore throat. CMAJ "
    "1998;158:75-83.",
)
def centor_mcisaac(x: CentorInputs) -> Outcome:
    """McIsaac: fever, no cough, tender nodes, tonsillar exudate (1 each), age 3-14 +1, >=45 -1."""
    centor = (
        int(x.fever)
        + int(x.absence_of_cough)
        + int(x.tender_anterior_cervical_nodes)
        + int(x.tonsillar_exudate_or_swelling)
    )
    age_adj = 1 if x.age < 15 else -1 if x.age >= 45 else 0
    score = centor + age_adj
    text = (
        "no testing or antibiotics (<=1)"
        if score <= 1
        else (
            "rapid antigen test or culture; treat if positive (2-3)"
            if score <= 3
            else "test, or consider empirical treatment (>=4)"
        )
    )
    return Outcome(score, text, {"centor": centor, "age_adjustment": age_adj})


class FeverPainInputs(Inputs):
    fever: bool = Field(False, description="Fever in the past 24 hours.")
    purulence: bool = Field(False, description="Pharyngeal or tonsillar exudate.")
    attend_rapidly: bool = Field(False, description="Attended within 3 days of symptom onset.")
    inflamed_tonsils: bool = Field(False, description="Severely inflamed tonsils.")
    no_cough_or_coryza: bool = Field(False, description="No cough or coryza.")


@calculator(
    "feverpain",
    title="FeverPAIN score (streptococcal pharyngitis)",
    unit="points",
    citation="Little P, Moore M, Hobbs FDR, et al. PRImary care Streptococcal Management (PRISM) "
    "study: identifying clinical variables associated with Lancefield group A beta-haemolytic "
    "streptococci and Lancefield non-Group A streptococcal throat infections from two cohorts "
    "of patients presenting with an acute sore throat. BMJ Open 2013;3:e003943; Little P et "
    "al. BMJ 2013;347:f5806; NICE NG84 (2018) for the antibiotic strategy.",
)
def feverpain(x: FeverPainInputs) -> Outcome:
    """FeverPAIN: Fever, Purulence, Attend rapidly (<=3 days), severely Inflamed tonsils, No cough
    or coryza (1 point each)."""
    score = sum(int(v) for v in x.model_dump().values())
    text = (
        "0-1: streptococcus isolated in 13-18%; no antibiotic"
        if score <= 1
        else "2-3: 34-40%; no antibiotic or a back-up prescription"
        if score <= 3
        else "4-5: 62-65%; immediate or back-up antibiotic (NICE NG84)"
    )
    return Outcome(score, text)


class ApgarInputs(Inputs):
    appearance: int = Field(ge=0, le=2, description="Colour 0 blue/pale, 1 acrocyanosis, 2 pink.")
    pulse: int = Field(ge=0, le=2, description="Heart rate 0 absent, 1 <100, 2 >=100.")
    grimace: int = Field(ge=0, le=2, description="Reflex irritability 0-2.")
    activity: int = Field(ge=0, le=2, description="Muscle tone 0 limp, 1 some flexion, 2 active.")
    respiration: int = Field(ge=0, le=2, description="0 absent, 1 weak/irregular, 2 strong cry.")


@calculator(
    "apgar",
    title="APGAR score",
    unit="points",
    citation="Apgar V. A proposal for a new method of evaluation of the newborn infant. Curr Res "
    "Anesth Analg 1953;32:260-267.",
)
def apgar(x: ApgarInputs) -> Outcome:
    """APGAR = appearance + pulse + grimace + activity + respiration (each 0-2)."""
    score = x.appearance + x.pulse + x.grimace + x.activity + x.respiration
    text = (
        "reassuring (7-10)"
        if score >= 7
        else "moderately abnormal (4-6)"
        if score >= 4
        else ("low (0-3)")
    )
    return Outcome(score, text)


class PsiInputs(UreaOrBUN):
    urea_required = False  # labs not given are scored as normal, with a warning

    age: Annotated[float, Q("age", 18, 120, "Age (points = age; women age - 10)")]
    sex: Sex = Field(description="Sex.")
    nursing_home_resident: bool = Field(False, description="Nursing home resident (+10).")
    neoplastic_disease: bool = Field(False, description="Active cancer within 1 year (+30).")
    liver_disease: bool = Field(False, description="Cirrhosis or chronic hepatitis (+20).")
    congestive_heart_failure: bool = Field(False, description="Heart failure (+10).")
    cerebrovascular_disease: bool = Field(False, description="Stroke or TIA (+10).")
    renal_disease: bool = Field(False, description="Chronic kidney disease (+10).")
    altered_mental_status: bool = Field(False, description="Altered mental status (+20).")
    respiratory_rate: Annotated[float, Q("rate", 4, 80, "Respiratory rate (>=30: +20)")]
    systolic: Annotated[float, Q("pressure", 30, 300, "Systolic blood pressure (<90: +20)")]
    temperature: Annotated[float, Q("temperature", 25, 45, "Temperature (<35 or >=40 C: +15)")]
    heart_rate: Annotated[float, Q("rate", 20, 300, "Heart rate (>=125: +10)")]
    ph: Annotated[float | None, Q("unitless", 6.5, 8.0, "Arterial pH (<7.35: +30)")] = None
    sodium: Annotated[float | None, Q("electrolyte", 100, 200, "Sodium (<130: +20)")] = None
    glucose: Annotated[float | None, Q("glucose", 10, 3000, "Glucose (>=250 mg/dL: +10)")] = None
    hematocrit: Annotated[float | None, Q("percent", 5, 80, "Haematocrit (<30%: +10)")] = None
    pao2: Annotated[float | None, Q("pressure", 10, 700, "Arterial PO2 (<60 mmHg: +10)")] = None
    oxygen_saturation: Annotated[
        float | None, Q("percent", 50, 100, "SaO2, used when PaO2 is not given (<90%: +10)")
    ] = None
    pleural_effusion: bool = Field(False, description="Pleural effusion on imaging (+10).")


# Fine 1997, Table 2: points of each present finding (age and sex are scored separately).
PSI_POINTS = {
    "nursing_home_resident": 10,
    "neoplastic_disease": 30,
    "liver_disease": 20,
    "congestive_heart_failure": 10,
    "cerebrovascular_disease": 10,
    "renal_disease": 10,
    "altered_mental_status": 20,
    "respiratory_rate_ge_30": 20,
    "systolic_lt_90": 20,
    "temperature_lt_35_or_ge_40": 15,
    "heart_rate_ge_125": 10,
    "ph_lt_7.35": 30,
    "bun_ge_30_mg_dl": 20,
    "sodium_lt_130": 20,
    "glucose_ge_250_mg_dl": 10,
    "hematocrit_lt_30": 10,
    "pao2_lt_60_or_sao2_lt_90": 10,
    "pleural_effusion": 10,
}
_PSI_COMORBID = (
    "neoplastic_disease",
    "liver_disease",
    "congestive_heart_failure",
    "cerebrovascular_disease",
    "renal_disease",
)
_PSI_EXAM = (
    "altered_mental_status",
    "respiratory_rate_ge_30",
    "systolic_lt_90",
    "temperature_lt_35_or_ge_40",
    "heart_rate_ge_125",
)


@calculator(
    "psi_port",
    title="Pneumonia Severity Index (PSI/PORT)",
    unit="points",
    citation="Fine MJ, Auble TE, Yealy DM, et al. A prediction rule to identify low-risk "
    "patients with community-acquired pneumonia. N Engl J Med 1997;336:243-250 (Table 2 "
    "points; classes I-V and their mortality in the validation cohorts).",
)
def psi_port(x: PsiInputs) -> Outcome:
    """PSI: age (women -10) + nursing home 10 + comorbidities, exam and lab findings (10-30 each);
    class I-V (I: age <=50 with no comorbidity or exam finding)."""
    bun = x.bun_mg_dl
    oxygen_low = (
        x.pao2 < 60
        if x.pao2 is not None
        else (x.oxygen_saturation < 90 if x.oxygen_saturation is not None else None)
    )
    findings: dict[str, bool | None] = {
        "nursing_home_resident": x.nursing_home_resident,
        "neoplastic_disease": x.neoplastic_disease,
        "liver_disease": x.liver_disease,
        "congestive_heart_failure": x.congestive_heart_failure,
        "cerebrovascular_disease": x.cerebrovascular_disease,
        "renal_disease": x.renal_disease,
        "altered_mental_status": x.altered_mental_status,
        "respiratory_rate_ge_30": x.respiratory_rate >= 30,
        "systolic_lt_90": x.systolic < 90,
        "temperature_lt_35_or_ge_40": x.temperature < 35 or x.temperature >= 40,
        "heart_rate_ge_125": x.heart_rate >= 125,
        "ph_lt_7.35": None if x.ph is None else x.ph < 7.35,
        "bun_ge_30_mg_dl": None if bun is None else bun >= 30,
        "sodium_lt_130": None if x.sodium is None else x.sodium < 130,
        "glucose_ge_250_mg_dl": None if x.glucose is None else x.glucose >= 250,
        "hematocrit_lt_30": None if x.hematocrit is None else x.hematocrit < 30,
        "pao2_lt_60_or_sao2_lt_90": oxygen_low,
        "pleural_effusion": x.pleural_effusion,
    }
    present = [k for k, hit in findings.items() if hit]
    not_given = [k.split("_")[0] for k, hit in findings.items() if hit is None]
    age_points = int(x.age) - (10 if x.sex == "female" else 0)
    score = age_points + sum(PSI_POINTS[k] for k in present)
    class_one = x.age <= 50 and not any(k in present for k in (*_PSI_COMORBID, *_PSI_EXAM))
    if class_one:
        cls, mort = "I", "0.1%"
    elif score <= 70:
        cls, mort = "II", "0.6%"
    elif score <= 90:
        cls, mort = "III", "0.9%"
    elif score <= 130:
        cls, mort = "IV", "9.3%"
    else:
        cls, mort = "V", "27.0%"
    care = (
        "outpatient care"
        if cls in ("I", "II")
        else ("brief observation or admission" if cls == "III" else "admission")
    )
    warnings = (
        [f"not given, scored as normal: {', '.join(not_given)} (the score may be too low)"]
        if not_given
        else []
    )
    return Outcome(
        score,
        f"risk class {cls}: 30-day mortality {mort} in the validation cohorts; usually {care}",
        {
            "class": cls,
            "age_points": age_points,
            "findings": present,
            "scored_as_normal": not_given,
        },
        warnings,
    )
