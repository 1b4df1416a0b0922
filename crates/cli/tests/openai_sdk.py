"""The official `openai` Python SDK against `sotto proxy`: what a user's tools do with it.

Run by crates/cli/tests/cli/proxy.rs as `python openai_sdk.py BASE_URL API_KEY CANARY`, with the
proxy in front of a stack whose enclave serves a tiny generated model (its words are noise, so
only shapes are checked here). Prints one line, "ok", when every check held; any failed check
raises.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import openai

base_url, api_key, canary = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)

models = client.models.list().data
assert len(models) == 1, models
model = models[0].id

answer = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": f"{canary} What is the capital of France?"},
    ],
    max_tokens=8,
    temperature=0,
)
choice = answer.choices[0]
assert choice.message.role == "assistant", choice
assert choice.message.content, choice
assert choice.finish_reason in ("stop", "length"), choice
assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 8, answer.usage
assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens

story = [{"role": "user", "content": "Tell me a story."}]
chunks = list(
    client.chat.completions.create(
        model=model,
        messages=story,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
)
# The enclave sends what it generated within each 50 ms tick together, and the tiny model is
# fast, so the number of chunks is not checked; what they add up to is.
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
whole = client.chat.completions.create(model=model, messages=story, max_tokens=16, temperature=0)
assert text and text == whole.choices[0].message.content, (text, whole)
assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
assert chunks[-1].usage is not None and chunks[-1].choices == [], chunks[-1]
assert chunks[-1].usage.completion_tokens == 16, chunks[-1].usage
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
assert finishes == ["length"], finishes

short = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Count to ten."}], max_tokens=3
)
assert short.choices[0].finish_reason == "length", short
assert short.usage.completion_tokens == 3, short.usage

try:
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    raise AssertionError("an unknown model was answered")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e

try:
    openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass


def ask(i):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"Question {i}"}], max_tokens=4
    )
    return r.choices[0].message.content


with ThreadPoolExecutor(4) as pool:
    answers = list(pool.map(ask, range(4)))
assert len(answers) == 4 and all(answers), answers

print("ok")
