"""The real `openai` client against a live server: completions, chat, streaming with and without usage."""
from __future__ import annotations

import pytest

from live_server import PROMPT
from unmask.engine.llm import LLM

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def offline(live, prompt: str, max_tokens: int, **overrides) -> str:
    from unmask.serve.app import with_max_tokens

    cfg = with_max_tokens(live.base.replace(**overrides) if overrides else live.base, max_tokens)
    return live.llm.generate([prompt], cfg)[0].text


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny-arith"]


def test_completion_matches_offline_generate(client, live):
    out = client.completions.create(model="tiny-arith", prompt=PROMPT, max_tokens=48)
    assert out.choices[0].text == offline(live, PROMPT, 48)
    assert out.choices[0].text.endswith("#### 68")
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.prompt_tokens == len(PROMPT) and out.usage.completion_tokens == len(out.choices[0].text)


def test_completion_batch_of_prompts(client, live):
    prompts = [PROMPT, "Tom has 17 cups. He loses 5 and doubles them. How many does he have?\n"]
    out = client.completions.create(model="tiny-arith", prompt=prompts, max_tokens=48)
    assert [c.index for c in out.choices] == [0, 1]
    assert [c.text for c in out.choices] == [offline(live, p, 48) for p in prompts]


def test_chat_uses_the_chat_template(client, live):
    out = client.chat.completions.create(model="tiny-arith", max_tokens=48,
                                         messages=[{"role": "user", "content": PROMPT.strip()}])
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == offline(live, PROMPT, 48)


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_completion(client, live, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.completions.create(model="tiny-arith", prompt=PROMPT, max_tokens=48, stream=True, **kwargs))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == offline(live, PROMPT, 48)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert (len(usage) == 1 and usage[0].completion_tokens == len(text)) if include_usage else not usage


def test_streaming_chat_sends_role_then_content(client, live):
    chunks = list(client.chat.completions.create(model="tiny-arith", max_tokens=48, stream=True,
                                                 messages=[{"role": "user", "content": PROMPT.strip()}],
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == offline(live, PROMPT, 48)
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + len(text)


def test_per_request_method_override_and_stop(client, live):
    out = client.completions.create(model="tiny-arith", prompt=PROMPT, max_tokens=48,
                                    extra_body={"unmask": {"preset": "llada", "overrides": {"block_length": 16}}})
    assert out.choices[0].text == offline(live, PROMPT, 48, commit="linear", steps=48, cache="none",
                                          threshold=0.9, confidence_fp64=False)
    stopped = client.completions.create(model="tiny-arith", prompt=PROMPT, max_tokens=48, stop=["="])
    assert stopped.choices[0].text == out.choices[0].text.split("=")[0]
    assert stopped.choices[0].finish_reason == "stop"


def test_max_tokens_cuts_the_text(client):
    out = client.completions.create(model="tiny-arith", prompt=PROMPT, max_tokens=5)
    assert len(out.choices[0].text) == 5 and out.choices[0].finish_reason == "length"


def test_sampling_seed_reproduces(client):
    kw = dict(model="tiny-arith", prompt=PROMPT, max_tokens=16, temperature=1.5)
    a, b = (client.completions.create(seed=11, **kw).choices[0].text for _ in range(2))
    assert a == b


def test_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-9", prompt=PROMPT)
    assert "gpt-9" in str(e.value)


def test_llm_fixture_is_the_shipped_model(tiny_arith):
    assert isinstance(tiny_arith, LLM) and tiny_arith.spec.context_len == 160
