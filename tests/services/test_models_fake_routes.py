"""Search, collections, deployment CRUD and trainings against the fake's extra routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import areplicate
from areplicate import PollSchedule, Status
from areplicate.testing import FakeReplicate


def paint(prompt: str, width: int = 512) -> str:
    return f"{prompt}@{width}"


@pytest.fixture
def fake() -> FakeReplicate:
    fake = FakeReplicate()
    fake.add_model("acme/paint", paint, description="Paints pictures from prompts")
    fake.add_model("acme/sing", lambda text="": text, description="Sings")
    fake.add_model("fake-user/paint-me", paint, description="My own painter")
    fake.add_collection("art", name="Art", description="Art models", models=["acme/paint"])
    return fake


@pytest.fixture
async def api(fake: FakeReplicate) -> AsyncIterator[areplicate.Client]:
    fast = PollSchedule(first=0.001, ratio=0.0, cap=0.001)
    async with (
        fake.serve() as url,
        areplicate.Client(api_token="r8_test", base_url=url, rate_limits=None, poll=fast) as c,
    ):
        yield c


async def test_search_with_the_query_method(api: areplicate.Client, fake: FakeReplicate) -> None:
    found = [f"{m.owner}/{m.name}" async for m in api.models.search("paint")]
    assert sorted(found) == ["acme/paint", "fake-user/paint-me"]
    assert fake.counts["QUERY /v1/models"] == 1


async def test_search_all_finds_models_and_collections(api: areplicate.Client) -> None:
    results = await api.models.search_all("pictures", limit=5)
    assert [hit.model.name for hit in results.models] == ["paint"]
    assert results.models[0].score == 1.0
    assert [c.slug for c in results.collections] == ["art"]


async def test_collections(api: areplicate.Client) -> None:
    assert [c.slug async for c in api.collections.list()] == ["art"]
    art = await api.collections.get("art")
    assert [m.name for m in art.models] == ["paint"]
    with pytest.raises(areplicate.NotFoundError):
        await api.collections.get("nope")


async def test_deployment_lifecycle(api: areplicate.Client, fake: FakeReplicate) -> None:
    version = (await api.models.get("acme/paint")).latest_version
    assert version is not None
    created = await api.deployments.create(
        "painter",
        model="acme/paint",
        version=version.id,
        hardware="gpu-t4",
        min_instances=0,
        max_instances=2,
    )
    assert (created.owner, created.name) == ("fake-user", "painter")
    assert [d.name async for d in api.deployments.list()] == ["painter"]

    prediction = await api.deployments.predictions.create(
        "fake-user/painter", {"prompt": "sun"}, hold=True, validate=True
    )
    assert prediction.output == "sun@512"

    updated = await api.deployments.update("fake-user/painter", max_instances=4)
    assert updated.current_release is not None
    assert updated.current_release.configuration.max_instances == 4
    assert updated.current_release.number == 2

    await api.deployments.delete("fake-user/painter")
    with pytest.raises(areplicate.NotFoundError):
        await api.deployments.get("fake-user/painter")


async def test_training_runs_to_a_new_destination_version(
    api: areplicate.Client, fake: FakeReplicate
) -> None:
    base = (await api.models.get("acme/paint")).latest_version
    assert base is not None
    before = [v.id async for v in api.models.versions.list("fake-user/paint-me")]
    training = await api.trainings.create(
        f"acme/paint:{base.id}", destination="fake-user/paint-me", input={"images": "x.zip"}
    )
    assert training.status is Status.STARTING
    done = await api.trainings.wait(training)
    assert done.status is Status.SUCCEEDED
    assert isinstance(done.output, dict)
    new_ref = done.output["version"]
    after = [v.id async for v in api.models.versions.list("fake-user/paint-me")]
    assert len(after) == len(before) + 1
    assert new_ref == f"fake-user/paint-me:{after[0]}"
    assert await api.run(new_ref, {"prompt": "tuned"}) == "tuned@512"
    assert [t.id async for t in api.trainings.list()] == [training.id]


async def test_training_to_a_missing_destination(api: areplicate.Client) -> None:
    base = (await api.models.get("acme/paint")).latest_version
    assert base is not None
    with pytest.raises(areplicate.NotFoundError, match="destination does not exist"):
        await api.trainings.create(f"acme/paint:{base.id}", destination="acme/nope", input={})


async def test_training_cancel(api: areplicate.Client) -> None:
    base = (await api.models.get("acme/paint")).latest_version
    assert base is not None
    training = await api.trainings.create(
        f"acme/paint:{base.id}", destination="fake-user/paint-me", input={}
    )
    canceled = await api.trainings.cancel(training)
    assert canceled.status is Status.CANCELED
    assert (await api.trainings.wait(canceled)).status is Status.CANCELED
