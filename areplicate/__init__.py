"""areplicate: an asyncio-native client for the Replicate HTTP API.

``async with areplicate.Client() as client:`` then ``await client.run("owner/name", {...})``;
fan out with :func:`gather_predictions` / :func:`as_completed`; test offline with
:mod:`areplicate.testing`.
"""

from contextlib import suppress as _suppress
from typing import TYPE_CHECKING as _TYPE_CHECKING

from areplicate import resources, web, webhooks
from areplicate._client import Client
from areplicate._config import Config, RateLimits
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.retry import PollSchedule
from areplicate._core.schema import InputCheck
from areplicate._core.status import Status
from areplicate._default import run
from areplicate._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InputValidationError,
    InvalidReferenceError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ReplicateError,
    ServerError,
    UnexpectedResponseError,
    WebhookVerificationError,
)
from areplicate._fanout import (
    Completed,
    FanOut,
    Job,
    Progress,
    Stage,
    as_completed,
    gather_predictions,
)
from areplicate._models import (
    Account,
    Collection,
    CollectionHit,
    Deployment,
    DeploymentConfiguration,
    DeploymentRelease,
    FileObject,
    Hardware,
    Model,
    ModelHit,
    Page,
    Prediction,
    PredictionCanceledError,
    PredictionFailedError,
    PredictionURLs,
    SearchResults,
    StreamEvent,
    Training,
    Version,
    WaitTimeoutError,
)
from areplicate._options import Lifetime, RunOptions
from areplicate._outputs import FileOutput, output_files, save_outputs
from areplicate._stats import Stats
from areplicate._summary import ModelSummary, Summary, Tally

if _TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``areplicate.__version__``, read lazily from the installed package's metadata."""
    if name == "__version__":
        from areplicate._version import package_version

        return package_version()
    raise AttributeError(f"module 'areplicate' has no attribute {name!r}")


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "Account",
    "AuthenticationError",
    "Client",
    "Collection",
    "CollectionHit",
    "Completed",
    "Config",
    "Deployment",
    "DeploymentConfiguration",
    "DeploymentRelease",
    "FanOut",
    "FileObject",
    "FileOutput",
    "Hardware",
    "InputCheck",
    "InputValidationError",
    "InvalidReferenceError",
    "InvalidRequestError",
    "Job",
    "Lifetime",
    "Model",
    "ModelHit",
    "ModelRef",
    "ModelSummary",
    "NotFoundError",
    "Page",
    "PaymentRequiredError",
    "PollSchedule",
    "Prediction",
    "PredictionCanceledError",
    "PredictionFailedError",
    "PredictionURLs",
    "Progress",
    "RateLimitError",
    "RateLimits",
    "ReplicateError",
    "RunOptions",
    "SearchResults",
    "ServerError",
    "Stage",
    "Stats",
    "Status",
    "StreamEvent",
    "Summary",
    "Tally",
    "Training",
    "UnexpectedResponseError",
    "Version",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "as_completed",
    "gather_predictions",
    "output_files",
    "parse_ref",
    "resources",
    "run",
    "save_outputs",
    "web",
    "webhooks",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type(webhooks)):
        continue
    if getattr(_obj, "__module__", "").startswith("areplicate._"):
        with _suppress(AttributeError, TypeError):
            _obj.__module__ = "areplicate"
del _name, _obj, _suppress
