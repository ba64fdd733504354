"""What a batch of predictions cost: per model, predictions by status and the billed
``predict_time`` (total, p50, p95); overall, the wall time and the requests, retries and 429s."""

import math
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from areplicate._models import Prediction

if TYPE_CHECKING:
    from areplicate._client import Client
    from areplicate._fanout import Completed
    from areplicate._stats import Stats

__all__ = ["ModelSummary", "Summary", "Tally"]

#: The status an item that ended with an exception (no prediction to show for it) is counted under.
ERROR = "error"


def _percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when there are none).

    Always one of the values (no interpolation): with few predictions the p95 is simply the
    slowest one.
    """
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def _status(prediction: Prediction) -> str:
    """A status as its plain string, known or not (``"succeeded"``, not ``"Status.SUCCEEDED"``)."""
    status: Any = prediction.status
    return str(getattr(status, "value", status))


def _predict_time(prediction: Prediction) -> float | None:
    """The billed seconds ``metrics["predict_time"]`` reports, or None when absent or not a number.

    A boolean or a non-finite number is ignored rather than trusted: one bad value must not turn
    the whole batch's total into ``nan``.
    """
    value = prediction.metrics.get("predict_time") if prediction.metrics else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@attrs.frozen
class ModelSummary:
    """One model's share of a batch.

    ``predict_time`` is the billed seconds the API reports in each prediction's
    ``metrics["predict_time"]``; predictions without it (not started, or the API left it out) are
    not in the total nor the percentiles, so ``timed`` may be less than the predictions counted.
    """

    model: str
    #: How many predictions ended in each status (``"error"``: the item raised, no prediction).
    statuses: Mapping[str, int]
    #: Total billed seconds of the predictions that report it.
    predict_time: float
    #: Median and 95th percentile of those seconds (nearest rank; None when none report it).
    predict_time_p50: float | None
    predict_time_p95: float | None
    #: How many predictions reported a ``predict_time``.
    timed: int

    @property
    def count(self) -> int:
        """Items counted for this model, errors included.

        So it may exceed ``timed``, which counts only predictions that reported a ``predict_time``.
        """
        return sum(self.statuses.values())

    def describe(self) -> str:
        """One line: the counts by status, then the billed time.

        The statuses come most frequent first (ties by name), as :class:`Tally` orders them.
        """
        counts = ", ".join(f"{n} {status}" for status, n in self.statuses.items())
        text = f"{self.model}: {self.count} ({counts})"
        if self.timed:
            text += (
                f"; predict_time {self.predict_time:.1f} s total, "
                f"p50 {self.predict_time_p50:.2f} s, p95 {self.predict_time_p95:.2f} s"
            )
        return text


@attrs.frozen
class Summary:
    """What a batch of predictions cost, per model and overall (from :class:`Tally` or
    :meth:`Summary.of`). ``str(summary)`` is the text the CLI prints.

    The request counts are the client's over the batch's time: other work on the same client in
    that time is counted too.
    """

    models: tuple[ModelSummary, ...]
    #: Seconds from the start of the batch to its summary.
    wall_time: float
    #: Requests sent, retries and 429s met while the batch ran (None: not measured).
    requests: int | None = None
    retries: int | None = None
    throttled: int | None = None

    @property
    def predictions(self) -> int:
        """Items counted, over every model.

        Errors and invalid input lines included: they are items, even with no prediction to show.
        """
        return sum(m.count for m in self.models)

    @property
    def requests_per_prediction(self) -> float | None:
        """Requests sent per item (creates, polls, retries, downloads from the API); None when
        unknown or there were no items."""
        if self.requests is None or not self.predictions:
            return None
        return self.requests / self.predictions

    @classmethod
    def of(
        cls,
        items: Iterable["Completed | Prediction"],
        *,
        wall_time: float,
        stats: "Stats | None" = None,
        model: str = "(unknown model)",
    ) -> "Summary":
        """The summary of ``items`` (fan-out results or predictions). ``stats`` (e.g.
        ``client.stats - before``) adds the request counts; ``model`` labels items that raised
        before they had a prediction."""
        tally = Tally(None, model=model)
        for item in items:
            tally.add(item)
        return tally._summary(wall_time, stats)

    def describe(self) -> str:
        """A few lines for a person: one per model, then the totals."""
        lines = [m.describe() for m in self.models]
        total = f"Wall time {self.wall_time:.1f} s"
        if self.requests is not None:
            per = self.requests_per_prediction
            total += f"; {self.requests} requests"
            if per is not None:
                total += f" ({per:.1f} per prediction)"
            total += f", {self.retries} retries, {self.throttled} 429s"
        lines.append(total + ".")
        return "\n".join(lines)

    def __str__(self) -> str:
        """The text the CLI prints (:meth:`describe`)."""
        return self.describe()


class Tally:
    """Counts predictions as they finish and makes a :class:`Summary` of them.

    ``Tally(client)`` notes the client's counters and the time when made::

        tally = areplicate.Tally(client, model="owner/name")
        async for done in areplicate.as_completed(client, "owner/name", inputs):
            tally.add(done)
        print(tally.summary())
    """

    def __init__(self, client: "Client | None", *, model: str = "(unknown model)") -> None:
        """Note the time and ``client``'s counters now; ``model`` labels items that raised.

        Pass ``client=None`` to count predictions without request counts.
        """
        self._client = client
        self._model = model
        self._start = time.monotonic()
        self._before = client.stats if client is not None else None
        self._statuses: dict[str, dict[str, int]] = {}
        self._times: dict[str, list[float]] = {}

    def __repr__(self) -> str:
        """How many items were counted so far."""
        return f"<Tally {sum(sum(s.values()) for s in self._statuses.values())} items>"

    def add(self, item: "Completed | Prediction", *, model: str | None = None) -> None:
        """Count one finished item: a fan-out's Completed (an error counts as ``"error"``) or a
        terminal Prediction.

        It is counted under ``model`` when given (e.g. the reference it was created with),
        else under the prediction's own ``model``. The gotcha: the API reports ``owner/name``
        even for a create by version, so without ``model`` two spellings of one model share a
        line.
        """
        prediction = item if isinstance(item, Prediction) else item.prediction
        if prediction is None:
            self.count(model or self._model, ERROR)
            return
        model = model or prediction.model or self._model
        self.count(model, _status(prediction))
        seconds = _predict_time(prediction)
        if seconds is not None:
            self._times.setdefault(model, []).append(seconds)

    def count(self, model: str, status: str) -> None:
        """Count an item of ``model`` that ended as ``status`` without a prediction to show
        (the CLI counts its invalid input lines so)."""
        statuses = self._statuses.setdefault(model, {})
        statuses[status] = statuses.get(status, 0) + 1

    def summary(self) -> Summary:
        """The summary so far (the wall time runs from when the tally was made).

        It can be called again later for updated numbers; the tally keeps counting.
        """
        stats = None
        if self._client is not None and self._before is not None:
            stats = self._client.stats - self._before
        return self._summary(time.monotonic() - self._start, stats)

    def _summary(self, wall_time: float, stats: "Stats | None") -> Summary:
        """Build the :class:`Summary` from the counts, models sorted by name."""
        models = []
        for model in sorted(self._statuses):
            times = sorted(self._times.get(model, []))
            statuses = dict(sorted(self._statuses[model].items(), key=lambda kv: (-kv[1], kv[0])))
            models.append(
                ModelSummary(
                    model=model,
                    statuses=statuses,
                    predict_time=math.fsum(times),
                    predict_time_p50=_percentile(times, 0.5),
                    predict_time_p95=_percentile(times, 0.95),
                    timed=len(times),
                )
            )
        return Summary(
            models=tuple(models),
            wall_time=wall_time,
            requests=None if stats is None else stats.requests,
            retries=None if stats is None else stats.retries,
            throttled=None if stats is None else stats.throttled,
        )
