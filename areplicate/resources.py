"""The service classes a Client's attributes return (``client.predictions`` is a
:class:`Predictions`), for annotating code that takes one: ``def f(p: areplicate.resources.Predictions)``.

Reach them through a Client; they are not made by hand.
"""

from areplicate._services.deployments import DeploymentPredictions, Deployments
from areplicate._services.files import Files
from areplicate._services.misc import Accounts, Collections, HardwareSKUs
from areplicate._services.models import Models, Versions
from areplicate._services.predictions import Predictions
from areplicate._services.trainings import Trainings
from areplicate._services.webhooks import Webhooks

__all__ = [
    "Accounts",
    "Collections",
    "DeploymentPredictions",
    "Deployments",
    "Files",
    "HardwareSKUs",
    "Models",
    "Predictions",
    "Trainings",
    "Versions",
    "Webhooks",
]

for _cls in (
    Accounts,
    Collections,
    DeploymentPredictions,
    Deployments,
    Files,
    HardwareSKUs,
    Models,
    Predictions,
    Trainings,
    Versions,
    Webhooks,
):
    _cls.__module__ = __name__
del _cls
