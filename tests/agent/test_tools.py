"""ICD-10-CM lookup/search, drug interactions (not exhaustive), unit conversion, retrieval tool."""

from __future__ import annotations

import pytest

from medmllm.agent.tools import builtin_tools
from medmllm.agent.tools.ddi import TABLE, check
from medmllm.agent.tools.icd10 import lookup, search
from medmllm.errors import ToolInputError


def test_icd10_lookup_and_search() -> None:
    hit = lookup("E119")
    assert hit["code"] == "E11.9" and "Type 2 diabetes" in hit["description"] and hit["billable"]
    assert hit["parent"] == "E11"
    codes = [r["code"] for r in search("type 2 diabetes mellitus without complications")]
    assert "E11.9" in codes
    assert any(r["code"].startswith("I21") for r in search("acute myocardial infarction", 10))
    with pytest.raises(ToolInputError, match="not an ICD-10-CM code"):
        lookup("ZZZ.99")


def test_ddi_finds_pairs_by_class_and_always_says_not_exhaustive() -> None:
    out = check(["Warfarin 5 mg", "ibuprofen", "paracetamol"])
    assert [i["drugs"] for i in out["interactions"]] == [["warfarin", "ibuprofen"]]
    assert out["interactions"][0]["reference"].startswith("Holbrook")
    assert "Not exhaustive" in out["note"]
    none = check(["acetaminophen", "amoxicillin"])
    assert none["interactions"] == [] and "Not exhaustive" in none["note"]
    assert "amoxicillin" in none["unrecognised"]
    assert check(["Viagra", "isosorbide mononitrate"])["interactions"][0]["severity"] == (
        "contraindicated"
    )
    assert all(row.reference for row in TABLE)
    with pytest.raises(ToolInputError, match="at least two"):
        check(["warfarin"])


def test_builtin_tools_have_valid_schemas() -> None:
    tools = {t.name: t for t in builtin_tools()}
    assert {"icd10_lookup", "icd10_search", "drug_interactions", "convert_units", "bmi"} <= set(
        tools
    )
    for tool in tools.values():
        schema = tool.openai_schema()["function"]
        assert schema["parameters"]["type"] == "object", tool.name
    out = tools["convert_units"](
        {"value": 1.2, "from_unit": "mg/dL", "to_unit": "umol/L", "quantity": "creatinine"}
    )
    assert out["value"] == pytest.approx(106.08)
    with pytest.raises(ToolInputError, match="accepted"):
        tools["convert_units"](
            {"value": 1, "from_unit": "mg/dL", "to_unit": "lb", "quantity": "creatinine"}
        )


def test_retrieval_tool_numbers_passages() -> None:
    from medmllm.agent.tools.retrieve import retrieval_tool
    from medmllm.rag.chunk import Chunk
    from medmllm.rag.retriever import Hit

    class FakeIndex:
        def search(self, query: str, k: int = 5) -> list[Hit]:
            chunk = Chunk(
                id="d1#0",
                doc_id="d1",
                text="Metformin is first line.",
                start=0,
                end=24,
                source="guide",
            )
            return [Hit.of(chunk, 1.0)]

    tool = retrieval_tool(FakeIndex())
    out = tool({"query": "diabetes first line"})
    assert out["passages"][0]["n"] == 1 and "Metformin" in out["passages"][0]["text"]
    with pytest.raises(ToolInputError):
        tool({"query": ""})
