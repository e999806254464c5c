"""Drug-drug interaction check over a small curated table — NOT EXHAUSTIVE.

No public interaction database installs offline here (``clinical-ddi-check`` holds five pairs
and calls an online service), so this module carries a short table of well-established,
clinically important interactions, each with a reference. Every answer says it is not
exhaustive: the absence of a listed interaction never means the combination is safe.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Literal

from medmllm.agent.tools.base import TOOLS, Tool
from medmllm.errors import ToolInputError

NOT_EXHAUSTIVE = (
    "Not exhaustive: checked against a small curated table of {n} well-known interactions. "
    "No listed interaction does not mean the combination is safe; check a full interaction "
    "database and the product labels."
)

# Drug classes used by the table (members are generic names, lower case).
CLASSES: dict[str, set[str]] = {
    "nsaid": {
        "ibuprofen",
        "naproxen",
        "diclofenac",
        "ketorolac",
        "celecoxib",
        "indomethacin",
        "meloxicam",
        "aspirin",
    },
    "ssri": {"fluoxetine", "sertraline", "paroxetine", "citalopram", "escitalopram", "fluvoxamine"},
    "maoi": {
        "phenelzine",
        "tranylcypromine",
        "isocarboxazid",
        "selegiline",
        "rasagiline",
        "linezolid",
        "moclobemide",
    },
    "ace_inhibitor_or_arb": {
        "lisinopril",
        "enalapril",
        "ramipril",
        "captopril",
        "perindopril",
        "losartan",
        "valsartan",
        "candesartan",
        "irbesartan",
    },
    "nitrate": {"nitroglycerin", "isosorbide mononitrate", "isosorbide dinitrate"},
    "pde5_inhibitor": {"sildenafil", "tadalafil", "vardenafil"},
    "benzodiazepine": {"diazepam", "lorazepam", "alprazolam", "clonazepam", "midazolam"},
    "opioid": {
        "morphine",
        "oxycodone",
        "hydrocodone",
        "hydromorphone",
        "fentanyl",
        "methadone",
        "codeine",
        "tramadol",
        "tapentadol",
    },
    "strong_cyp3a4_inhibitor": {
        "clarithromycin",
        "ketoconazole",
        "itraconazole",
        "ritonavir",
        "posaconazole",
        "voriconazole",
    },
    "potassium_sparing": {"spironolactone", "eplerenone", "amiloride", "triamterene"},
    "thiopurine": {"azathioprine", "mercaptopurine"},
    "combined_oral_contraceptive": {"ethinylestradiol", "combined oral contraceptive"},
    "direct_oral_anticoagulant": {"apixaban", "rivaroxaban"},
}

SYNONYMS = {
    "paracetamol": "acetaminophen",
    "glyceryl trinitrate": "nitroglycerin",
    "gtn": "nitroglycerin",
    "co-trimoxazole": "trimethoprim-sulfamethoxazole",
    "bactrim": "trimethoprim-sulfamethoxazole",
    "tmp-smx": "trimethoprim-sulfamethoxazole",
    "rifampin": "rifampicin",
    "ethinyl estradiol": "ethinylestradiol",
    "the pill": "combined oral contraceptive",
    "acetylsalicylic acid": "aspirin",
    "asa": "aspirin",
    "viagra": "sildenafil",
    "coumadin": "warfarin",
    "lasix": "furosemide",
    "isosorbide": "isosorbide mononitrate",
}

Severity = Literal["contraindicated", "major", "moderate"]


@dataclass(frozen=True)
class Interaction:
    """One row: two drugs or classes, what happens, what to do, and the source."""

    a: str
    b: str
    severity: Severity
    effect: str
    management: str
    reference: str


_HOLBROOK = (
    "Holbrook AM, Pereira JA, Labiris R, et al. Systematic overview of warfarin and its drug and "
    "food interactions. Arch Intern Med 2005;165:1095-1106."
)
_BOYER = "Boyer EW, Shannon M. The serotonin syndrome. N Engl J Med 2005;352:1112-1120."

TABLE: tuple[Interaction, ...] = (
    Interaction(
        "warfarin",
        "nsaid",
        "major",
        "additive bleeding risk (antiplatelet effect, gastric mucosal injury)",
        "avoid; if needed, gastroprotection and close monitoring",
        _HOLBROOK,
    ),
    Interaction(
        "warfarin",
        "amiodarone",
        "major",
        "INR rises (CYP2C9 inhibition), bleeding",
        "reduce warfarin dose ~30-50% and monitor INR weekly",
        _HOLBROOK,
    ),
    Interaction(
        "warfarin",
        "trimethoprim-sulfamethoxazole",
        "major",
        "INR rises, bleeding",
        "prefer another antibiotic or monitor INR closely",
        _HOLBROOK,
    ),
    Interaction(
        "warfarin",
        "fluconazole",
        "major",
        "INR rises (CYP2C9 inhibition)",
        "monitor INR, consider dose reduction",
        _HOLBROOK,
    ),
    Interaction(
        "warfarin", "metronidazole", "major", "INR rises", "monitor INR, reduce dose", _HOLBROOK
    ),
    Interaction(
        "simvastatin",
        "strong_cyp3a4_inhibitor",
        "contraindicated",
        "myopathy and rhabdomyolysis (simvastatin exposure rises many-fold)",
        "do not combine; suspend simvastatin",
        "FDA Drug Safety Communication: new restrictions, "
        "contraindications and dose limitations for Zocor (simvastatin), 8 June 2011.",
    ),
    Interaction(
        "simvastatin",
        "amiodarone",
        "major",
        "myopathy risk",
        "do not exceed simvastatin 20 mg/day",
        "FDA Drug Safety Communication on simvastatin, 8 June 2011.",
    ),
    Interaction(
        "pde5_inhibitor",
        "nitrate",
        "contraindicated",
        "profound hypotension",
        "do not combine; no nitrate within 24 h of sildenafil (48 h tadalafil)",
        "VIAGRA (sildenafil) US prescribing information, Contraindications 4.1; "
        "ACC/AHA expert consensus, Cheitlin MD et al. Circulation 1999;99:168-177.",
    ),
    Interaction(
        "ssri",
        "maoi",
        "contraindicated",
        "serotonin syndrome",
        "do not combine; observe washout periods (5 weeks after fluoxetine)",
        _BOYER,
    ),
    Interaction(
        "tramadol",
        "ssri",
        "major",
        "serotonin syndrome; lowered seizure threshold",
        "avoid or monitor closely",
        _BOYER,
    ),
    Interaction(
        "tramadol", "maoi", "contraindicated", "serotonin syndrome", "do not combine", _BOYER
    ),
    Interaction(
        "ace_inhibitor_or_arb",
        "potassium_sparing",
        "major",
        "hyperkalaemia",
        "monitor potassium and creatinine; avoid in renal impairment",
        "Juurlink DN, Mamdani MM, Lee DS, et al. Rates of hyperkalemia after publication "
        "of the Randomized Aldactone Evaluation Study. N Engl J Med 2004;351:543-551.",
    ),
    Interaction(
        "methotrexate",
        "trimethoprim-sulfamethoxazole",
        "major",
        "bone-marrow suppression (antifolate synergy, reduced methotrexate clearance)",
        "avoid",
        "Bourré-Tessier J, Haraoui B. Methotrexate drug interactions in the treatment of "
        "rheumatoid arthritis: a systematic review. J Rheumatol 2010;37:1416-1421.",
    ),
    Interaction(
        "clopidogrel",
        "omeprazole",
        "moderate",
        "reduced activation of clopidogrel (CYP2C19 inhibition)",
        "prefer pantoprazole",
        "FDA Drug Safety Communication: "
        "reduced effectiveness of Plavix (clopidogrel) with omeprazole, 17 Nov 2009.",
    ),
    Interaction(
        "digoxin",
        "amiodarone",
        "major",
        "digoxin concentration rises (~70%), toxicity",
        "halve the digoxin dose and monitor levels",
        "CORDARONE (amiodarone) US prescribing information, Drug Interactions.",
    ),
    Interaction(
        "lithium",
        "nsaid",
        "major",
        "lithium toxicity (reduced renal clearance)",
        "avoid or monitor lithium levels",
        "LITHIUM carbonate US prescribing information, Drug Interactions (NSAIDs).",
    ),
    Interaction(
        "lithium",
        "ace_inhibitor_or_arb",
        "major",
        "lithium toxicity",
        "monitor lithium levels",
        "LITHIUM carbonate US prescribing information, Drug Interactions (ACE inhibitors, ARBs).",
    ),
    Interaction(
        "lithium",
        "hydrochlorothiazide",
        "major",
        "lithium toxicity",
        "monitor lithium levels, reduce dose",
        "LITHIUM carbonate US prescribing information, Drug Interactions (diuretics).",
    ),
    Interaction(
        "allopurinol",
        "thiopurine",
        "major",
        "severe myelotoxicity (xanthine oxidase inhibition)",
        "reduce azathioprine/mercaptopurine to one-third to one-quarter",
        "IMURAN (azathioprine) US prescribing information, Drug Interactions.",
    ),
    Interaction(
        "theophylline",
        "ciprofloxacin",
        "major",
        "theophylline toxicity (seizures, arrhythmia)",
        "avoid or monitor levels",
        "CIPRO (ciprofloxacin) US prescribing information, Warnings (theophylline).",
    ),
    Interaction(
        "opioid",
        "benzodiazepine",
        "major",
        "profound sedation, respiratory depression, death",
        "avoid; if unavoidable, lowest doses and monitoring",
        "FDA Drug Safety "
        "Communication: boxed warning on combined opioid and benzodiazepine use, "
        "31 Aug 2016.",
    ),
    Interaction(
        "rifampicin",
        "combined_oral_contraceptive",
        "major",
        "contraceptive failure (enzyme induction)",
        "use a non-hormonal or additional method",
        "RIFADIN (rifampin) US prescribing information, Drug Interactions.",
    ),
    Interaction(
        "colchicine",
        "strong_cyp3a4_inhibitor",
        "contraindicated",
        "fatal colchicine toxicity, especially with renal or hepatic impairment",
        "do not combine in renal/hepatic impairment; otherwise reduce colchicine dose",
        "COLCRYS (colchicine) US prescribing information, Contraindications and 7.1.",
    ),
    Interaction(
        "direct_oral_anticoagulant",
        "strong_cyp3a4_inhibitor",
        "major",
        "higher anticoagulant exposure, bleeding",
        "avoid (rivaroxaban) or reduce dose (apixaban)",
        "ELIQUIS (apixaban) and XARELTO (rivaroxaban) US prescribing "
        "information, Drug Interactions.",
    ),
    Interaction(
        "metformin",
        "iodinated contrast",
        "moderate",
        "lactic acidosis if contrast causes acute kidney injury",
        "hold metformin at the time of contrast when eGFR "
        "<30 or AKI; recheck renal function at 48 h",
        "ACR Manual on Contrast Media, 2023, Metformin chapter.",
    ),
)


def normalise(drug: str) -> str:
    """Lower-case generic name with common brand names and spellings mapped."""
    name = re.sub(r"\s+", " ", drug.strip().lower())
    name = re.sub(r"\s+\d.*$", "", name)  # drop a trailing dose, "warfarin 5 mg"
    return SYNONYMS.get(name, name)


def _members(term: str) -> set[str]:
    return CLASSES.get(term, {term})


def _known() -> set[str]:
    names = set().union(*CLASSES.values())
    for row in TABLE:
        names |= _members(row.a) | _members(row.b)
    return names


def check(drugs: list[str]) -> dict[str, Any]:
    """Interactions among ``drugs`` found in the table, always labelled not exhaustive."""
    if len(drugs) < 2:
        raise ToolInputError(
            f"need at least two drugs to check, got {drugs!r}", hint="list every drug taken"
        )
    names = [normalise(d) for d in drugs]
    found = []
    for x, y in itertools.combinations(dict.fromkeys(names), 2):
        for row in TABLE:
            ma, mb = _members(row.a), _members(row.b)
            if (x in ma and y in mb) or (y in ma and x in mb):
                found.append(
                    {
                        "drugs": [x, y],
                        "severity": row.severity,
                        "effect": row.effect,
                        "management": row.management,
                        "reference": row.reference,
                    }
                )
    known = _known()
    return {
        "drugs": names,
        "interactions": found,
        "unrecognised": [n for n in names if n not in known],
        "note": NOT_EXHAUSTIVE.format(n=len(TABLE)),
    }


def _tool(arguments: dict[str, Any]) -> dict[str, Any]:
    drugs = arguments.get("drugs")
    if not isinstance(drugs, list) or not all(isinstance(d, str) for d in drugs):
        raise ToolInputError(f"'drugs' must be a list of drug names, got {drugs!r}")
    return check(drugs)


TOOLS.register(
    "drug_interactions",
    Tool(
        "drug_interactions",
        "Check a list of drugs for well-known interactions (small curated table, not exhaustive).",
        {
            "type": "object",
            "properties": {
                "drugs": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Generic drug names, at least two.",
                }
            },
            "required": ["drugs"],
            "additionalProperties": False,
        },
        _tool,
    ),
)
