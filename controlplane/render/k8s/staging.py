"""Model staging: the volume the engines read the checkpoint from, and the Job that fills
it (pure: plan -> manifest dicts).

The engines run offline (HF_HUB_OFFLINE=1) with HF_HOME on the volume, so they find the
checkpoint in Hugging Face's cache layout (`hub/models--<org>--<name>/snapshots/<rev>/`)
by its repository id, exactly as the engine command names it (engines/base.py). Two ways:
- `pvc` (default): a rendered claim `<name>-models`, ReadWriteOnce for the download Job
  and ReadOnlyMany for the worker pods on many nodes (so the StorageClass must offer both:
  NFS, CephFS, cloud file stores), sized from the checkpoint's bytes (capacity/weights.py);
- `host_path`: a folder on every GPU node (local NVMe) that the user fills; no claim or Job.
"""

from __future__ import annotations

import math
from typing import Any

from controlplane.errors import UserError
from controlplane.planner.models import DeploymentPlan
from controlplane.render.k8s.common import (
    K8sOptions,
    kubernetes,
    metadata,
)
from controlplane.spec.kubernetes import ModelStorage

MODELS_PATH = "/models"  # HF_HOME of the engines and of the download Job
STAGING_COMPONENT = "models"
HEADROOM = 1.10  # the cache's refs/metadata and a checkpoint revision's small files
HF_TOKEN_SECRET_KEY = "token"  # optional Secret `<name>-hf-token` for gated repositories
DOWNLOAD_SCRIPT = (
    "import os, sys\n"
    "from huggingface_hub import snapshot_download\n"
    "path = snapshot_download(os.environ['GLMCTL_HF_REPO'])\n"
    "print('checkpoint in', path, file=sys.stderr)\n"
)


def checkpoint(plan: DeploymentPlan) -> tuple[str, float]:
    """(Hugging Face repository, bytes on disk) of the plan's checkpoint, from the catalog
    and the capacity model's weight bytes."""
    from controlplane.capacity.layout import layout_of
    from controlplane.capacity.weights import checkpoint_bytes
    from controlplane.spec.models import TopologySpec
    from controlplane.spec.resolve import resolve

    spec = TopologySpec.model_validate(plan.spec)
    if spec.model is None:
        raise UserError(
            f"`{plan.name}` names its model by `model_config`, so glmctl cannot size or"
            " download its checkpoint for Kubernetes.",
            fix="set `kubernetes.models.size_gib` and `kubernetes.models.claim` (a PVC you"
            " fill yourself), or use `storage: host_path`.",
        )
    topology = resolve(spec)
    layout = layout_of(topology)
    return topology.model.hf_repo, checkpoint_bytes(layout.arch, layout.checkpoint_format)


def claim_name(plan: DeploymentPlan, options: K8sOptions) -> str:
    return options.models_claim or kubernetes(plan).models.claim or f"{plan.name}-models"


def models_volume(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    """The worker pods' `models` volume (read-only)."""
    models = kubernetes(plan).models
    if models.storage is ModelStorage.HOST_PATH:
        return {"name": "models", "hostPath": {"path": models.host_path, "type": "Directory"}}
    claim = {"claimName": claim_name(plan, options), "readOnly": True}
    return {"name": "models", "persistentVolumeClaim": claim}


def size_gib(plan: DeploymentPlan) -> int:
    """The claim's size: the topology's, else the checkpoint's bytes with HEADROOM."""
    models = kubernetes(plan).models
    if models.size_gib is not None:
        return models.size_gib
    _, nbytes = checkpoint(plan)
    return math.ceil(nbytes * HEADROOM / 1024**3)


def staging_objects(plan: DeploymentPlan, options: K8sOptions) -> list[dict[str, Any]]:
    """The claim and the download Job; none for host_path or a claim the user brings."""
    models = kubernetes(plan).models
    own_claim = models.claim is None and options.models_claim is None
    if models.storage is ModelStorage.HOST_PATH or not own_claim:
        return []
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
        "resources": {"requests": {"storage": f"{size_gib(plan)}Gi"}},
    }
    if models.storage_class:
        spec["storageClassName"] = models.storage_class
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(plan, claim_name(plan, options), STAGING_COMPONENT),
        "spec": spec,
    }
    return [pvc, download_job(plan, options)] if models.download else [pvc]


def download_job(plan: DeploymentPlan, options: K8sOptions) -> dict[str, Any]:
    """A Job that downloads the checkpoint into the claim in Hugging Face cache layout.
    Idempotent: snapshot_download skips files already complete."""
    repo, _ = checkpoint(plan)
    token = {
        "secretKeyRef": {
            "name": f"{plan.name}-hf-token",
            "key": HF_TOKEN_SECRET_KEY,
            "optional": True,  # public repositories need no token
        }
    }
    container = {
        "name": "download",
        "image": options.ray_image_for(plan),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", DOWNLOAD_SCRIPT],
        "env": [
            {"name": "HF_HOME", "value": MODELS_PATH},
            {"name": "GLMCTL_HF_REPO", "value": repo},
            {"name": "HF_TOKEN", "valueFrom": token},
        ],
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        "volumeMounts": [{"name": "models", "mountPath": MODELS_PATH}],
    }
    volume = {"name": "models", "persistentVolumeClaim": {"claimName": claim_name(plan, options)}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(plan, f"{plan.name}-download", STAGING_COMPONENT),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": metadata(plan, "", STAGING_COMPONENT)["labels"]},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }
