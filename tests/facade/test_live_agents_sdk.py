"""Live: an unmodified openai-agents agent with a @function_tool, on both of its
OpenAI model classes, against the live stack (the model double decides the calls)."""

from __future__ import annotations

from collections.abc import Iterator

import agents
import openai
import pytest

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply

ran: list[str] = []


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    ran.append(city)
    return f"sunny in {city}"


@pytest.fixture
def client(facade: Facade, core: CoreProcess) -> Iterator[openai.AsyncOpenAI]:
    agents.set_tracing_disabled(True)
    yield openai.AsyncOpenAI(base_url=facade.base_url + "/v1", api_key=core.api_key, max_retries=0)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_an_agent_runs_its_function_tool_and_answers(
    client: openai.AsyncOpenAI, model_double: ModelDouble, api: str
) -> None:
    ran.clear()
    model_double.script(
        Reply.call_tools([("get_weather", {"city": "Oslo"})]),
        Reply.echo_tool_results("The tool said: {text}"),
    )
    model: agents.Model = (
        agents.OpenAIResponsesModel("sonnet", client)
        if api == "responses"
        else agents.OpenAIChatCompletionsModel("sonnet", client)
    )
    agent = agents.Agent(name="helper", tools=[get_weather], model=model)

    result = await agents.Runner.run(agent, "weather in Oslo?")

    assert ran == ["Oslo"]
    assert result.final_output == "The tool said: sunny in Oslo"
    offered = set(model_double.main_requests[0].offered_tools) - {"DeferredToolPlaceholder"}
    assert offered == {"get_weather"}
