"""Never run: ``mypy --strict tests/typing/api.py`` reads the public API the way users write it.

Each annotated assignment and ``assert_type`` is a claim about what a user's type checker sees; a
change that breaks one breaks someone's code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from typing_extensions import assert_type

import areplicate
from areplicate import (
    APIConnectionError,
    APIError,
    Client,
    Completed,
    Config,
    FanOut,
    FileOutput,
    InputValidationError,
    InvalidRequestError,
    Model,
    ModelRef,
    Page,
    PollSchedule,
    Prediction,
    PredictionFailedError,
    RateLimitError,
    RateLimits,
    ReplicateError,
    RunOptions,
    Status,
    StreamEvent,
    WaitTimeoutError,
)
from areplicate.testing import FakeReplicate

REF = "black-forest-labs/flux-schnell"


async def configure() -> None:
    client = Client()
    assert_type(client, Client)
    Client("r8_token", base_url="https://api.cometapi.com/replicate")
    Client(
        request_timeout=30.0,
        connect_timeout=5,
        max_retries=2,
        max_connections=50,
        poll=PollSchedule(first=0.2, ratio=0.1, cap=3.0),
        rate_limits=RateLimits(creates_per_minute=300),
    )
    Client(rate_limits=None, environ={"REPLICATE_API_TOKEN": "r8_x"})
    base: str = client.base_url
    assert_type(base, str)
    config = client.config
    assert_type(config, Config)
    per_request: float = config.request_timeout
    del per_request
    patient = client.with_options(request_timeout=120.0, max_retries=0)
    assert_type(patient, Client)
    await client.aclose()


async def predictions(client: Client) -> None:
    p = await client.predictions.create(REF, {"prompt": "a cat"})
    assert_type(p, Prediction)
    p = await client.predictions.create(
        f"{REF}:{'0' * 64}",
        {"prompt": "a cat"},
        hold=10,
        lifetime="5m",
        webhook="https://example.com/hook",
        webhook_events_filter=["completed"],
    )
    await client.predictions.create("0" * 64, {}, hold=True, lifetime=dt.timedelta(minutes=5))
    p = await client.predictions.get(p.id)
    p = await client.predictions.get(p)
    p = await client.predictions.wait(p, timeout=60)
    p = await client.predictions.cancel(p)

    status: Status | str = p.status
    if p.status == Status.SUCCEEDED or p.status == "succeeded":  # noqa: PLR1714 - each comparison is a typing check
        output: Any = p.output
        del output
    finished: bool = p.is_terminal
    created: dt.datetime | None = p.created_at
    metrics: dict[str, Any] | None = p.metrics
    stream_url: str | None = p.urls.stream
    del status, finished, created, metrics, stream_url

    async for item in client.predictions.list(created_after=dt.datetime.now(dt.timezone.utc)):
        assert_type(item, Prediction)
    async for page in client.predictions.pages():
        assert_type(page, Page[Prediction])
        next_link: str | None = page.next
        del next_link

    events = client.predictions.stream(p)
    assert_type(events, AsyncIterator[StreamEvent])
    async for event in events:
        if event.event == "output":
            text: str = event.data
            del text


async def run(client: Client) -> None:
    out = await client.run(REF, {"prompt": "a cat"})
    assert_type(out, Any)
    await client.run(REF, {"prompt": "a cat"}, hold=False, timeout=120.0)
    out = await client.predictions.run(REF, {"prompt": "a cat"}, lifetime="5m")
    ended = await client.predictions.create_and_wait(
        REF, {"prompt": "a cat"}, hold=5, timeout=60, cancel_on_exit=False
    )
    assert_type(ended, Prediction)
    succeeded = ended.raise_for_status()
    assert_type(succeeded, Prediction)
    lifetime: areplicate.Lifetime = dt.timedelta(minutes=5)
    options = RunOptions(hold=10, timeout=60.0, lifetime=lifetime, validate=True)
    held: int | None = options.hold_seconds
    del held


async def fan_out(client: Client) -> None:
    inputs = [{"prompt": f"cat {i}"} for i in range(10)]
    results = await areplicate.gather_predictions(client, REF, inputs, concurrency=32)
    assert_type(results, list[Prediction])
    mixed = await areplicate.gather_predictions(client, REF, inputs, return_exceptions=True)
    assert_type(mixed, list[Prediction | BaseException])
    for result in mixed:
        if isinstance(result, BaseException):
            continue
        assert_type(result, Prediction)

    fan = areplicate.as_completed(client, REF, inputs, concurrency=8, hold=False, timeout=600)
    assert_type(fan, FanOut)
    async with fan as done:
        async for item in done:
            assert_type(item, Completed)
            index: int = item.index
            prediction: Prediction | None = item.prediction
            error: BaseException | None = item.error
            ok: bool = item.ok
            del index, prediction, error, ok


async def errors(client: Client) -> None:
    try:
        await client.run(REF, {})
    except PredictionFailedError as exc:
        failed: Prediction = exc.prediction
        del failed
    except WaitTimeoutError as exc:
        last: Prediction = exc.prediction
        del last
    except InvalidRequestError as exc:
        fields: list[dict[str, Any]] = exc.invalid_fields
        del fields
    except RateLimitError as exc:
        wait: float | None = exc.retry_after
        del wait
    except APIError as exc:
        code: int = exc.status
        detail: str | None = exc.detail
        request_id: str | None = exc.request_id
        del code, detail, request_id
    except APIConnectionError as exc:
        maybe_created: bool = exc.sent
        del maybe_created
    except InputValidationError as exc:
        problems: list[str] = exc.problems
        del problems
    except ReplicateError:
        pass


def refs() -> None:
    ref = areplicate.parse_ref(REF)
    assert_type(ref, ModelRef)
    owner: str | None = ref.owner
    version: str | None = ref.version
    model: str | None = ref.model
    del owner, version, model
    terminal: bool = Status.ABORTED.is_terminal
    del terminal


async def files_webhooks_models(client: Client, body: bytes, headers: dict[str, str]) -> None:
    ended = await client.predictions.create_and_wait(REF, {"image": Path("cat.png")}, validate=True)
    prediction = ended.raise_for_status()
    for file in areplicate.output_files(prediction, client):
        assert_type(file, FileOutput)
        data: bytes = await file.read()
        del data
    saved = await areplicate.save_outputs(client, [prediction], "out/")
    assert_type(saved, list[Path])
    async for sku in client.hardware.list():
        assert_type(sku, areplicate.Hardware)
    service: areplicate.resources.Predictions = client.predictions
    assert_type(client.hardware, areplicate.resources.HardwareSKUs)
    del service
    secret: str = await client.webhooks.default_secret()
    areplicate.webhooks.verify(headers, body, secret)
    delivered: Prediction = areplicate.webhooks.parse(body)
    model: Model = await client.models.get("acme/hello")
    schema: dict[str, Any] = await client.models.input_schema("acme/hello")
    warnings: list[str] = await client.models.validate_input("acme/hello", {"prompt": "hi"})
    del delivered, model, schema, warnings


async def testing() -> None:
    fake = FakeReplicate()
    fake.add_model("acme/echo", lambda text="": text)
    async with fake.serve() as base_url, Client("r8_test", base_url=base_url) as client:
        assert_type(base_url, str)
        await client.run("acme/echo", {"text": "hi"})
    count: int = fake.counts["POST /v1/models/{owner}/{name}/predictions"]
    del count


async def module_level_run() -> None:
    out = await areplicate.run(REF, {"prompt": "hi"}, timeout=30, lifetime="5m")
    del out
    await areplicate.run(REF, {}, wait=True)  # type: ignore[call-arg]  # hold=, not wait=


async def workflows(client: Client) -> None:
    prompts = [f"cat {i}" for i in range(10)]

    async def caption(client: Client, prompt: str) -> str:
        image = await client.run("acme/draw", {"prompt": prompt})
        return str(await client.run("acme/caption", {"image": image}))

    captions: list[str] = await areplicate.gather_predictions(client, caption, prompts)
    assert_type(captions, list[str])
    tolerant = await areplicate.gather_predictions(
        client, caption, prompts, concurrency=4, return_exceptions=True
    )
    assert_type(tolerant, list[str | BaseException])

    async def settle(client: Client, n: int) -> Prediction:
        return await client.predictions.create_and_wait("acme/echo", {"n": n})

    settled: list[Prediction] = await areplicate.gather_predictions(client, settle, range(3))
    del settled

    fan = areplicate.as_completed(client, caption, prompts, concurrency=8)
    assert_type(fan, FanOut[str])
    async with fan as done:
        async for item in done:
            assert_type(item, Completed[str])
            text: str | None = item.result
            index: int = item.index
            prediction: Prediction | None = item.prediction
            del text, index, prediction

    bare: Completed = Completed(index=0, input={}, result=None)
    from_model: Prediction | None = bare.result
    del from_model

    jobs = [
        areplicate.Job("acme/draw", {"prompt": "a cat"}),
        areplicate.Job("acme/echo", {"n": 1}),
    ]
    mixed: list[Prediction] = await areplicate.gather_predictions(client, None, jobs)
    lines: list[dict[str, Any]] = [{"model": "acme/echo", "input": {"n": 1}}]
    from_lines: list[Prediction | BaseException] = await areplicate.gather_predictions(
        client, None, lines, return_exceptions=True
    )
    job_fan = areplicate.as_completed(client, None, jobs, timeout=60)
    assert_type(job_fan, FanOut[Prediction])
    del mixed, from_lines

    draw, describe = areplicate.Stage("draw", 8), areplicate.Stage("describe", 32)

    async def pipeline(client: Client, prompt: str) -> str:
        async with draw:
            image = await client.run("acme/draw", {"prompt": prompt})
        async with describe:
            return str(await client.run("acme/caption", {"image": image}))

    def show(progress: areplicate.Progress) -> None:
        print(progress.done, draw, describe.running, describe.waiting, describe.done)

    piped: list[str] = await areplicate.gather_predictions(
        client, pipeline, prompts, concurrency=40, on_progress=show
    )
    del piped


async def text_output(client: Client) -> None:
    prediction = await client.predictions.create_and_wait("meta/llama", {"prompt": "hi"})
    text: str | None = prediction.output_text
    model = await client.models.get("meta/llama")
    if model.latest_version is not None:
        is_text: bool = model.latest_version.output_is_text
        del is_text
    del text
