"""Live: the Vercel AI SDK's `generateText` with a tool that has `execute`, over
two steps (the call, then the answer), on its chat and Responses models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.facade.gunicorn_proc import Facade
from tests.facade.live import CoreProcess, ModelDouble, Reply

TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "facade-ai-sdk"
PACKAGES = ["ai@6", "@ai-sdk/openai", "zod"]
NPM_INSTALL = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--no-save"]

SCRIPT = r"""
const { generateText, tool, stepCountIs } = require('ai');
const { createOpenAI } = require('@ai-sdk/openai');
const { z } = require('zod');
const provider = createOpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY });
(async () => {
  const model = process.env.API === 'chat' ? provider.chat('sonnet') : provider.responses('sonnet');
  const ran = [];
  const result = await generateText({
    model, prompt: 'weather in Oslo?', maxRetries: 0, stopWhen: stepCountIs(2),
    tools: { get_weather: tool({
      description: 'The weather in a city.',
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => { ran.push(city); return `sunny in ${city}`; },
    }) },
  });
  console.log(JSON.stringify({ text: result.text, steps: result.steps.length, ran }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def _ai_sdk() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the AI SDK test needs them")
    if not (TOOLS / "node_modules" / "ai").is_dir():
        TOOLS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [*NPM_INSTALL, "--prefix", str(TOOLS), *PACKAGES],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install of the AI SDK failed: {done.stderr[-500:]}")
    return TOOLS


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_generate_text_runs_the_tool_and_answers(
    facade: Facade, core: CoreProcess, model_double: ModelDouble, api: str
) -> None:
    tools = _ai_sdk()
    model_double.script(
        Reply.call_tools([("get_weather", {"city": "Oslo"})]),
        Reply.echo_tool_results("{text}!"),
    )
    script = tools / "generate.js"
    script.write_text(SCRIPT)
    done = subprocess.run(
        ["node", str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={
            **os.environ,
            "BASE_URL": facade.base_url + "/v1",
            "API_KEY": core.api_key,
            "API": api,
            "NODE_PATH": str(tools / "node_modules"),
        },
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ran"] == ["Oslo"]
    assert out["steps"] == 2
    assert "sunny in Oslo" in out["text"]
