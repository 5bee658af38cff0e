"""Live: structured-output client libraries against the real stack: instructor
(JSON mode, and TOOLS mode through client tools) and LangChain's
`with_structured_output` (json_schema and json_mode)."""

from __future__ import annotations

from enum import StrEnum

import instructor
import openai
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply

MODEL = "sonnet"


class Status(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"


class Item(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    customer: str
    items: list[Item]
    status: Status


ORDER = {"customer": "Åsa", "items": [{"sku": "b-12", "qty": 2}], "status": "open"}


def test_instructor_json_mode(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    model_double.script(Reply.call_tools([("StructuredOutput", ORDER)]))
    client = instructor.from_openai(sdk, mode=instructor.Mode.JSON)
    order = client.chat.completions.create(
        model=MODEL,
        response_model=Order,
        messages=[{"role": "user", "content": "Record the order for Åsa."}],
        max_retries=0,
    )
    # instructor hands back its own subclass of the model.
    assert isinstance(order, Order) and order.model_dump(mode="json") == ORDER


def test_instructor_tools_mode(sdk: openai.OpenAI, model_double: ModelDouble) -> None:
    # TOOLS mode offers the schema as a function the model must call; the
    # call comes back as the client's tool call, which instructor parses.
    model_double.script(Reply.call_tools([("Order", ORDER)]))
    client = instructor.from_openai(sdk, mode=instructor.Mode.TOOLS)
    order = client.chat.completions.create(
        model=MODEL,
        response_model=Order,
        messages=[{"role": "user", "content": "Record the order for Åsa."}],
        max_retries=0,
    )
    assert isinstance(order, Order) and order.model_dump(mode="json") == ORDER
    offered = set(model_double.main_requests[-1].offered_tools)
    assert "Order" in offered and "Bash" not in offered  # the client's tools only


def _chat_model(facade: Facade, core: CoreProcess) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=facade.base_url + "/v1",
        api_key=SecretStr(core.api_key),
        max_retries=0,
        timeout=90,
    )


def test_langchain_json_schema(
    facade: Facade, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.script(Reply.call_tools([("StructuredOutput", ORDER)]))
    structured = _chat_model(facade, core).with_structured_output(Order, method="json_schema")
    assert structured.invoke("Record the order for Åsa.") == Order.model_validate(ORDER)
    offered = model_double.main_requests[-1].offered_tools["StructuredOutput"]
    assert set(offered["input_schema"]["properties"]) == {"customer", "items", "status"}


def test_langchain_json_mode(facade: Facade, core: CoreProcess, model_double: ModelDouble) -> None:
    model_double.script(Reply.call_tools([("StructuredOutput", ORDER)]))
    structured = _chat_model(facade, core).with_structured_output(Order, method="json_mode")
    answer = structured.invoke("Record the order for Åsa as JSON with customer, items, status.")
    assert answer == Order.model_validate(ORDER)
