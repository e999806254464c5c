"""Medical PHI recognizers that Presidio's defaults miss, as one regex-driven Presidio recognizer.

Each pattern has named groups; every group whose name is a PHI type becomes one finding, so a
label ("MRN:") gives context without being redacted itself, and "Boston, MA 02115" yields a
LOCATION and a ZIP at once. Scores: 0.95 when a label or unambiguous shape backs the match,
lower for bare shapes. The canonical PHI types (HIPAA Safe Harbor identifiers) are
:data:`PHI_TYPES`. The Presidio adapter that runs them lives in
:mod:`medmllm.safety.phi_recognizer`, so importing the patterns (and ``medmllm``) stays free of
Presidio and spaCy (~2 s of start-up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHI_TYPES: tuple[str, ...] = (
    "NAME",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "ADDRESS",
    "LOCATION",
    "ZIP",
    "SSN",
    "MRN",
    "ACCOUNT",
    "HEALTH_PLAN",
    "NPI",
    "DEA",
    "HOSPITAL",
    "DEVICE_ID",
    "VEHICLE_ID",
    "URL",
    "IP",
    "ID",
)

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Pike|Alley|Row|"
    r"Crossing|Xing|Heights|Hts|Hills?|Mountains?|Ports?|Points?|Ridges?|Springs?|Stream|"
    r"Summit|Tunnel|Turnpike|Union|Valleys?|Views?|Villages?|Ville|Vista|Walks?|Wells?|"
    r"Estates?|Expressway|Extensions?|Falls?|Ferry|Fields?|Flats?|Fords?|Forest|Forges?|Forks?|"
    r"Fort|Freeway|Gardens?|Gateway|Glens?|Greens?|Groves?|Harbors?|Haven|Islands?|Isle|"
    r"Junctions?|Keys?|Knolls?|Lakes?|Landing|Lights?|Loaf|Locks?|Lodge|Loop|Mall|Manors?|"
    r"Meadows?|Mews|Mills?|Mission|Motorway|Mount|Neck|Orchard|Oval|Overpass|Park|Parks|"
    r"Pass|Passage|Path|Pines?|Plains?|Plaza|Port|Prairie|Radial|Ramp|Ranch|Rapids?|Rest|"
    r"Route|Shoals?|Shores?|Skyway|Spur|Stravenue|Track|Trafficway|Underpass|Unions?|Bypass|"
    r"Camp|Canyon|Cape|Causeway|Centers?|Cliffs?|Club|Common|Corners?|Course|Courts|Coves?|"
    r"Creek|Crescent|Crest|Curve|Dale|Dam|Divide|Drives|Bluffs?|Bottom|Branch|Bridge|Brooks?|"
    r"Burgs?|Beach|Bend|Arcade|Anex|Shoal|Station|Roads|Plain|Lock|Key|Light|Mill|Isles|"
    r"Inlet|Hollow|Harbor|Grove|Glen|Garden|Crossroads?|Wall|Well|Runs?|Viaduct|Via|Squares|"
    r"Spurs|Throughway|Trace|Tracks|Trails|Turnpikes|Vly|Unions|Roads|Streets|Routes|Ways|"
    r"Circles|Drives|Lanes|Plazas|Rue|Close|Gardens)"
)
_CAP = r"[A-Z][A-Za-z'\-]+"
_STATE = (
    r"(?:A[LKZR]|C[AOT]|D[EC]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|"
    r"S[CD]|T[NX]|UT|V[AT]|W[AIVY]|PR|GU|VI|AS|MP|AA|AE|AP|FM|MH|PW)"
)
_ID = r"[A-Z0-9][A-Z0-9\-]{3,24}[0-9][A-Z0-9]*"
_SEP = r"\s*(?:No\.?|Number|Num|#|ID)?\s*[:#]?\s*"


@dataclass(frozen=True)
class PhiPattern:
    """A regex whose named groups (PHI type names) are findings."""

    name: str
    regex: re.Pattern[str]
    score: float


def _p(name: str, pattern: str, score: float = 0.95, flags: int = 0) -> PhiPattern:
    return PhiPattern(name, re.compile(pattern, flags), score)


PATTERNS: tuple[PhiPattern, ...] = (
    # -- record, account, plan, licence numbers (label + value) ---------------------------------
    _p(
        "mrn",
        rf"\b(?:MRN|MR\s?#|Med(?:ical)?\.?\s+Rec(?:ord)?s?\.?|Record|Chart|Unit\s+No){_SEP}"
        rf"(?P<MRN>{_ID}|\d{{4,12}})\b",
        flags=re.I,
    ),
    _p(
        "account",
        rf"\b(?:Account|Acct|Billing|Encounter|Visit|FIN|CSN|Invoice){_SEP}(?P<ACCOUNT>{_ID}|\d{{4,14}})\b",
        flags=re.I,
    ),
    _p(
        "health_plan",
        rf"\b(?:Health\s+Plan|Member|Policy|Insurance|Subscriber|Beneficiary|Medicaid|Medicare|"
        rf"Group|Plan)(?:\s+(?:ID|No\.?|Number|#))?\s*[:#]?\s*(?P<HEALTH_PLAN>{_ID}|\d{{5,14}})\b",
        flags=re.I,
    ),
    _p("npi", r"\bNPI\s*(?:No\.?|Number|#)?\s*[:#]?\s*(?P<NPI>\d{10})\b", flags=re.I),
    _p("dea", r"\bDEA\s*(?:No\.?|Number|#)?\s*[:#]?\s*(?P<DEA>[A-Z]{2}\d{7})\b", flags=re.I),
    _p("dea_shape", r"\b(?P<DEA>[ABCDEFGHJKLMPRSTUX][A-Z]\d{7})\b", score=0.6),
    _p(
        "ssn",
        r"\b(?:SSN|SS#|Social\s+Security(?:\s+(?:No\.?|Number|#))?)\s*[:#]?\s*"
        r"(?P<SSN>\d{3}[-\s]?\d{2}[-\s]?\d{4})\b",
        flags=re.I,
    ),
    _p("ssn_shape", r"\b(?P<SSN>(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4})\b", score=0.85),
    _p(
        "device",
        rf"\b(?:Serial|S/N|SN|Device(?:\s+ID)?|UDI|Lot|Model|Implant|Pacemaker|Pump|IMEI)"
        rf"(?:\s+(?:ID|No\.?|Number|#))?\s*[:#]?\s*(?P<DEVICE_ID>{_ID})\b",
        flags=re.I,
    ),
    _p(
        "vehicle",
        r"\b(?:VIN|Vehicle(?:\s+ID)?|License\s+Plate|Licen[cs]e\s+Plate\s+(?:No\.?|Number)|"
        r"Plate)\s*(?:No\.?|Number|#)?\s*[:#]?\s*"
        r"(?P<VEHICLE_ID>[A-Z0-9][A-Z0-9\- ]{1,15}[A-Z0-9])\b",
        flags=re.I,
    ),
    _p(
        "vin",
        r"\b(?P<VEHICLE_ID>(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-Z])[A-HJ-NPR-Z0-9]{17})\b",
    ),
    _p(
        "generic_id",
        r"\b(?:ID|Identifier|Patient\s+ID|Pt\s+ID|License|Licence|Certificate|Passport)"
        rf"\s*(?:No\.?|Number|#)?\s*[:#]\s*(?P<ID>{_ID}|\d{{4,14}})\b",
        flags=re.I,
    ),
    # -- contact ----------------------------------------------------------------------------------
    _p(
        "fax",
        r"\b(?:fax|facsimile|f)\s*(?:No\.?|Number|#)?\s*[:#]?\s*"
        r"(?P<FAX>(?:\+?1[-.\s]?)?\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4})\b",
        flags=re.I,
    ),
    _p(
        "phone",
        r"(?<![\w-])(?P<PHONE>(?:\+?1[-.\s]?)?(?:\(\d{3}\)\s?|\d{3}[-.\s])\d{3}[-.\s]\d{4}"
        r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?)(?![\w-])",
        score=0.9,
    ),
    _p(
        "phone_plain",
        r"\b(?:phone|tel|cell|mobile|pager|ph)\s*[:#]?\s*(?P<PHONE>\d{10})\b",
        flags=re.I,
    ),
    _p(
        "ipv4",
        r"\b(?P<IP>(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3})\b",
    ),
    # -- places -----------------------------------------------------------------------------------
    _p(
        "street",
        rf"\b(?P<ADDRESS>\d{{1,6}}[A-Z]?\s+(?:(?:[NSEW]|North|South|East|West)\.?\s+)?"
        rf"(?:{_CAP}\s+){{0,3}}{_STREET_SUFFIX}\.?"
        r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Fl|Floor|#)\.?\s*#?\s*[A-Z0-9-]+)?)\b",
    ),
    _p(
        "url",
        r"(?P<URL>\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]])",
        score=0.95,
        flags=re.I,
    ),
    _p("po_box", r"\b(?P<ADDRESS>P\.?\s?O\.?\s+Box\s+\d+)\b", flags=re.I),
    _p(
        "city_state_zip",
        rf"\b(?P<LOCATION>{_CAP}(?:\s+{_CAP}){{0,2}}),\s+(?P<STATE>{_STATE})\s+"
        r"(?P<ZIP>\d{5}(?:-\d{4})?)\b",
    ),
    _p("state_zip", rf"\b{_STATE}\s+(?P<ZIP>\d{{5}}(?:-\d{{4}})?)\b"),
    _p(
        "zip_label",
        r"\b(?:ZIP|Zip\s+Code|Postal\s+Code)\s*[:#]?\s*(?P<ZIP>\d{5}(?:-\d{4})?)\b",
        flags=re.I,
    ),
    _p(
        "city_label",
        rf"\b(?:City|Town|Lives\s+in|Resides\s+in|Resident\s+of|from)\s*:?\s+(?P<LOCATION>{_CAP}(?:\s+{_CAP}){{0,2}})",
        score=0.7,
    ),
    _p(
        "hospital",
        rf"\b(?P<HOSPITAL>(?:(?:St\.?|Saint|Mount|Mt\.?)\s+)?{_CAP}(?:\s+(?:{_CAP}|of|&|and)){{0,4}}\s+"
        r"(?:Hospital|Clinic|Medical\s+Center|Health\s+Center|Medical\s+Centre|Infirmary|"
        r"Health\s+System|Healthcare|Health\s+Care|Nursing\s+Home|Rehabilitation\s+Center|"
        r"Surgery\s+Center|Cancer\s+Center|Children's\s+Hospital|Urgent\s+Care|Family\s+Practice|"
        r"Medical\s+Group|Associates|Pediatrics|Cardiology|Dialysis\s+Center|Hospice|Pharmacy))\b",
        score=0.9,
    ),
    # -- dates and ages ---------------------------------------------------------------------------
    _p(
        "date_numeric",
        r"(?<![\w/.-])(?P<DATE>(?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01])[/.-](?:\d{4}|\d{2})|"
        r"(?:0?[1-9]|[12]\d|3[01])[/.-](?:0?[1-9]|1[0-2])[/.-](?:\d{4}|\d{2})|"
        r"(?:19|20)\d{2}[/.-](?:0?[1-9]|1[0-2])[/.-](?:0?[1-9]|[12]\d|3[01]))(?![\w/-])",
    ),
    _p(
        "date_text",
        rf"\b(?P<DATE>{_MONTH}\s+(?:0?[1-9]|[12]\d|3[01]){_ORD},?\s+(?:19|20)\d{{2}}|"
        rf"(?:0?[1-9]|[12]\d|3[01]){_ORD}\s+(?:of\s+)?{_MONTH},?\s+(?:19|20)\d{{2}}|"
        rf"(?:0?[1-9]|[12]\d|3[01])-{_MONTH}-(?:\d{{4}}|\d{{2}})|"
        rf"{_MONTH}\s+(?:0?[1-9]|[12]\d|3[01]){_ORD}(?!\d)|"
        rf"{_MONTH},?\s+(?:19|20)\d{{2}})\b",
    ),
    _p(
        "date_month_year",
        r"(?<![\w/])(?P<DATE>(?:0?[1-9]|1[0-2])/(?:19|20)\d{2})(?![\w/])",
        score=0.7,
    ),
    _p(
        "age_over_89",
        r"\b(?:age[ds]?\s*:?\s*)?(?P<AGE>(?:9\d|1[0-1]\d))(?:\s*|-)(?:y/?o\b|yo\b|years?(?:\s+|-)old|"
        r"-?year-old|yrs?\b|y\.o\.)",
        flags=re.I,
    ),
    _p("age_label", r"\b(?:age[ds]?|Age)\s*:?\s*(?P<AGE>9\d|1[0-1]\d)\b", flags=re.I),
    # -- names after a title or a label ----------------------------------------------------------
    _p(
        "name_title",
        rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Doctor|Nurse|RN|NP|PA)\.?\s+(?P<NAME>{_CAP}(?:\s+{_CAP}){{0,2}})",
        score=0.9,
    ),
    _p(
        "name_label",
        r"\b(?:Patient|Pt|Name|Patient\s+Name|Attending|Physician|Provider|Referring|PCP|"
        r"Seen\s+by|Signed\s+by|Contact|Emergency\s+Contact|Mother|Father|Spouse|Guardian)\s*[:]\s*"
        r"(?:(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\.?\s+)?"
        rf"(?P<NAME>{_CAP}(?:\s+{_CAP}\.?){{0,3}})",
        score=0.9,
    ),
    _p(
        "name_suffix",
        rf"\b(?P<NAME>{_CAP}\s+{_CAP}),?\s+(?:MD|M\.D\.|DO|RN|NP|PA-C|PhD|DDS|PharmD)\b",
        score=0.9,
    ),
)

# Types the regex layer can emit; "STATE" is context only (states are allowed by Safe Harbor).
REGEX_TYPES = tuple(sorted({g for p in PATTERNS for g in p.regex.groupindex} - {"STATE"}))
