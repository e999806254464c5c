"""medmllm's own routes: /v1/ask (grounded answer, streamed for the web UI), /v1/agent (the
tool-using agent), /v1/deid and /v1/apps/NAME (every registered clinical application).

Each one is admitted like the OpenAI routes (429 when full) and runs under the request's one
deadline; the model they reach is the server's wrapped one (cancellable, de-identifying when so
configured), and user text is crisis-checked by the guard first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from medmllm.serve.state import ApiError, ServerState, check_max_tokens, require_key, sse_response


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=20_000, description="The medical question.")
    max_tokens: int = Field(256, ge=1, le=4096, description="Most tokens to generate.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy.")
    k: int | None = Field(None, ge=1, le=20, description="Passages retrieved (default: server's).")
    stream: bool = Field(False, description="Server-sent events: deltas, then the answer.")
    user: str | None = Field(None, max_length=256, description="End-user id (hashed in audit).")


class AgentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(
        min_length=1, max_length=20_000, description="The question, with its values in prose."
    )
    tools: list[str] | None = Field(
        None, max_length=64, description="Tool names to offer (default: every built-in tool)."
    )
    max_steps: int = Field(4, ge=1, le=8, description="Model calls at most.")
    user: str | None = Field(None, max_length=256, description="End-user id (hashed in audit).")


class DeidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000, description="Text to de-identify.")
    operator: Literal["mask", "tag", "hash", "surrogate"] = Field("tag", description="How.")


def build_medmllm_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["medmllm"])

    @router.post("/ask", response_model=None)
    async def ask(req: AskRequest, user_hash: str | None = Depends(require_key)):
        """A grounded answer with citations and per-sentence grounding (RAG when configured)."""
        from medmllm.assistant import Answer, Assistant

        check_max_tokens(state, req.max_tokens)
        slot = state.runner.admit()
        try:
            retriever = await state.runner.call(slot, state.retriever)
        except BaseException:
            slot.release()
            raise
        bot = Assistant(
            state.generator,
            retriever=retriever,
            k=req.k or state.config.top_k,
            guard=state.guard,
            user=req.user or user_hash,
        )

        def items() -> Any:
            return bot.stream(req.question, max_tokens=req.max_tokens, temperature=req.temperature)

        if req.stream:

            async def events() -> AsyncIterator[dict[str, Any]]:
                try:
                    async for item in state.runner.iterate(slot, items):
                        if isinstance(item, Answer):
                            if "crisis" in item.extra:
                                state.crisis.inc()
                            yield {"answer": item.to_dict()}
                        else:
                            yield {"delta": item}
                except Exception:
                    yield {"error": {"message": "generation failed or timed out"}}
                finally:
                    slot.release()

            return sse_response(events())
        with slot:
            final: Answer | None = None
            async for item in state.runner.iterate(slot, items):
                if isinstance(item, Answer):
                    final = item
        assert final is not None
        if "crisis" in final.extra:
            state.crisis.inc()
        return final.to_dict()

    @router.post("/agent")
    async def agent(
        req: AgentRequest, user_hash: str | None = Depends(require_key)
    ) -> dict[str, Any]:
        """The tool-using agent (calculators, ICD-10-CM, interactions; search with an index)."""
        from medmllm.agent.loop import Agent, AgentConfig
        from medmllm.agent.tools import TOOLS, builtin_tools
        from medmllm.agent.tools.retrieve import retrieval_tool

        tools = [TOOLS.get(n) for n in req.tools] if req.tools else builtin_tools()
        start = time.perf_counter()
        verdict = state.guard.check(req.question)
        audit_user = req.user or user_hash
        if verdict.reply is not None:
            state.crisis.inc()
            state.guard.audit(
                prompt=req.question,
                user=audit_user,
                model=state.model_name,
                route="agent",
                latency_s=time.perf_counter() - start,
                crisis=verdict.crisis,
                status="crisis",
            )
            return {
                "answer": verdict.reply,
                "status": "final",
                "trace": [],
                "medmllm": {"crisis": verdict.crisis.to_dict()},
            }
        limit = state.config.max_tokens_limit
        config = AgentConfig(
            max_steps=req.max_steps,
            max_tokens_per_step=max(16, min(160, limit)),
            max_total_tokens=max(64, min(6000, limit * req.max_steps)),
        )
        with state.runner.admit() as slot:
            retriever = await state.runner.call(slot, state.retriever)
            if retriever is not None:
                tools = [*tools, retrieval_tool(retriever)]
            bot = Agent(state.generator, tools, config)
            answer = await state.runner.call(slot, bot.run, req.question)
        state.tokens.inc(answer.tokens)
        state.guard.audit(
            prompt=req.question,
            user=audit_user,
            model=state.model_name,
            route="agent",
            latency_s=time.perf_counter() - start,
            crisis=verdict.crisis,
        )
        return answer.model_dump(mode="json")

    @router.post("/deid")
    async def deid(req: DeidRequest) -> dict[str, Any]:
        """De-identify text with the server's PHI recognizers (admitted like a model call)."""
        from medmllm.safety.phi import Deidentifier

        def job() -> Any:
            engine = Deidentifier(operator=req.operator, salt=state.guard.config.salt)
            return engine.deidentify(req.text)

        start = time.perf_counter()
        with state.runner.admit() as slot:
            result = await state.runner.call(slot, job)
        return {
            "text": result.text,
            "entities": [s.to_dict() for s in result.spans],
            "counts": result.counts(),
            "latency_s": round(time.perf_counter() - start, 4),
        }

    @router.get("/apps")
    async def apps() -> dict[str, Any]:
        """The clinical applications served under /v1/apps/NAME, with their request schemas."""
        from medmllm.apps import APPS

        return {
            "apps": [
                {"name": name, "request": APPS.get(name).request.model_json_schema()}
                for name in APPS.names()
            ]
        }

    @router.post("/apps/{name}")
    async def run_application(
        name: str,
        body: dict[str, Any] = Body(..., description="The app's request (see GET /v1/apps)."),  # noqa: B008
        user_hash: str | None = Depends(require_key),
    ) -> dict[str, Any]:
        """Run one clinical application (structured JSON), crisis-checked by the server's guard."""
        from medmllm.apps import APPS, run_app

        if name not in APPS:
            raise ApiError(404, f"unknown app {name!r}; available: {', '.join(APPS.names())}")
        with state.runner.admit() as slot:
            retriever = await state.runner.call(slot, state.retriever)
            job = functools.partial(
                run_app, name, body, state.generator, retriever, guard=state.guard
            )
            result = await state.runner.call(slot, job)
        return result.model_dump(mode="json")

    return router
