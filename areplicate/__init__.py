"""areplicate: an asyncio-native client for the Replicate HTTP API.

``async with areplicate.Client() as client:`` then ``await client.run("owner/name", {...})``;
fan out with :func:`gather_predictions` / :func:`as_completed`; test offline with
:mod:`areplicate.testing`.
"""

from contextlib import suppress as _suppress
from importlib import import_module as _import_module
from types import ModuleType as _ModuleType
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from areplicate._client import Client
from areplicate._config import Config, RateLimits
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.retry import PollSchedule
from areplicate._core.status import Status
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

if _TYPE_CHECKING:
    from areplicate import resources, web, webhooks
    from areplicate._core.schema import InputCheck
    from areplicate._default import run
    from areplicate._fanout import (
        Completed,
        FanOut,
        Job,
        Progress,
        Stage,
        as_completed,
        gather_predictions,
    )
    from areplicate._summary import ModelSummary, Summary, Tally

    __version__: str

# Names loaded at first use (``areplicate.gather_predictions``, ``from areplicate import web``),
# so ``import areplicate`` does not pay for the fan-out, the resource modules, the webhook
# receiver, schema checks or the batch summary until a program touches them: name -> module.
_LAZY = {
    "Completed": "areplicate._fanout",
    "FanOut": "areplicate._fanout",
    "InputCheck": "areplicate._core.schema",
    "Job": "areplicate._fanout",
    "ModelSummary": "areplicate._summary",
    "Progress": "areplicate._fanout",
    "Stage": "areplicate._fanout",
    "Summary": "areplicate._summary",
    "Tally": "areplicate._summary",
    "as_completed": "areplicate._fanout",
    "gather_predictions": "areplicate._fanout",
    "resources": "areplicate.resources",
    "run": "areplicate._default",
    "web": "areplicate.web",
    "webhooks": "areplicate.webhooks",
}


def _present(obj: object) -> None:
    """Show a public class or function as ``areplicate.X`` (its private module is a detail)."""
    if isinstance(obj, _ModuleType) or not getattr(obj, "__module__", "").startswith(
        "areplicate._"
    ):
        return
    with _suppress(AttributeError, TypeError):
        obj.__module__ = "areplicate"


def __getattr__(name: str) -> _Any:
    """The lazily loaded public names (see ``_LAZY``), and ``areplicate.__version__``, read from
    the installed package's metadata. Each is looked up once, then kept in the module."""
    if name == "__version__":
        from areplicate._version import package_version

        return package_version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'areplicate' has no attribute {name!r}")
    loaded = _import_module(module)
    value = loaded if module == f"areplicate.{name}" else getattr(loaded, name)
    _present(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name, the lazily loaded ones included."""
    return sorted({*globals(), *_LAZY})


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
    if _name not in _LAZY:
        _present(globals()[_name])
del _name
