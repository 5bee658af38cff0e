"""Live: LangChain's ChatOpenAI with `bind_tools`, a tool call, and a ToolMessage
with its result, against the live stack."""

from __future__ import annotations

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_bind_tools_and_a_tool_message_round_trip(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(
        Reply.call_tools([("get_weather", {"city": "Lima"})]),
        Reply.echo_tool_results("It is {text}."),
    )
    llm = ChatOpenAI(
        model="sonnet",
        base_url=facade.base_url + "/v1",
        api_key=SecretStr(core.api_key),
        max_retries=0,
    ).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("weather in Lima?")]

    asked = llm.invoke(messages)

    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [("get_weather", {"city": "Lima"})]
    messages.append(asked)
    for call in asked.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    answer = llm.invoke(messages)
    assert answer.content == "It is sunny in Lima."
