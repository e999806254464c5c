"""Acute care scores: CURB-65, qSOFA, SOFA, Centor/McIsaac, Glasgow Coma Scale, APGAR."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from medmllm.agent.tools.calculators.base import Inputs, Outcome, Q, calculator


class Curb65Inputs(Inputs):
    confusion: bool = Field(False, description="New mental confusion.")
    urea: Annotated[
        float,
        Q(
            "urea",
            0.5,
            100,
            "Serum urea (mmol/L; a BUN in mg/dL converts: >7 mmol/L = BUN >19.6 mg/dL)",
        ),
    ]
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
    """CURB-65: confusion, urea >7 mmol/L, RR >=30, SBP <90 or DBP <=60, age >=65 (1 point each)."""
    score = (
        int(x.confusion)
        + int(x.urea > 7)
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
    return Outcome(score, f"30-day mortality {mort} in the derivation cohorts; {care}")


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


class GCSInputs(Inputs):
    eye: int = Field(ge=1, le=4, description="Eye opening 1-4 (4 spontaneous).")
    verbal: int = Field(ge=1, le=5, description="Verbal response 1-5 (5 oriented).")
    motor: int = Field(ge=1, le=6, description="Motor response 1-6 (6 obeys commands).")


@calculator(
    "gcs",
    title="Glasgow Coma Scale",
    unit="points",
    citation="Teasdale G, Jennett B. Assessment of coma and impaired consciousness. A practical "
    "scale. Lancet 1974;2:81-84.",
)
def gcs(x: GCSInputs) -> Outcome:
    """Glasgow Coma Scale = eye (1-4) + verbal (1-5) + motor (1-6)."""
    score = x.eye + x.verbal + x.motor
    text = "severe (<=8)" if score <= 8 else "moderate (9-12)" if score <= 12 else "mild (13-15)"
    return Outcome(score, f"{text} brain injury range", {"E": x.eye, "V": x.verbal, "M": x.motor})


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
