"""KubeRay v1.7.0's own checks of a RayService, transcribed to Python over manifest dicts.

Source: github.com/ray-project/kuberay, tag v1.7.0, commit
59d663aeec13760646da3db9c1cf8cfe883e30b7:
- ray-operator/controllers/ray/utils/validation.go: ValidateRayServiceMetadata,
  ValidateRayServiceSpec, ValidateRayClusterSpec (with validateRayGroupResources,
  validateRayGroupLabels, validateWorkerGroupIdleTimeout, validateWorkerGroupPriority and
  validateGcsFaultToleranceBackend for the redis backend);
- ray-operator/controllers/ray/common/pod.go: initLivenessAndReadinessProbe (what probe a
  Ray container ends up with), configureGCSFaultTolerance (variables KubeRay appends);
- ray-operator/controllers/ray/utils/util.go: GenerateHashWithoutReplicasAndWorkersToDelete
  (what a RayService compares to decide on a new RayCluster);
- ray-operator/controllers/ray/utils/constant.go: the names and numbers used below.

Feature gates at their v1.7.0 defaults (pkg/features/features.go): RayJobDeletionPolicy on,
RayClusterHistoryServer / RayClusterNetworkPolicy / RayClusterMTLS /
GCSFaultToleranceEmbeddedStorage off. Checks about fields glmctl never renders
(historyServerOptions, tlsOptions, networkPolicy, authOptions, autoscalerOptions.env) are
transcribed as "must be absent", which is what they reduce to with those gates off.
Each check raises `KubeRayRejects` with KubeRay's own message.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

COMMIT = "59d663aeec13760646da3db9c1cf8cfe883e30b7"

# constant.go
MAX_RAYCLUSTER_NAME = 53
MAX_RAYSERVICE_NAME = MAX_RAYCLUSTER_NAME - 6
RAY_CONTAINER_INDEX = 0
FT_ANNOTATION = "ray.io/ft-enabled"
EXTERNAL_STORAGE_NS_ANNOTATION = "ray.io/external-storage-namespace"
RAY_REDIS_ADDRESS = "RAY_REDIS_ADDRESS"
REDIS_PASSWORD = "REDIS_PASSWORD"
REDIS_USERNAME = "REDIS_USERNAME"
RAY_ENABLE_AUTOSCALER_V2 = "RAY_enable_autoscaler_v2"
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365
DEFAULT_SERVING_PORT = 8000
SERVING_PORT_NAME = "serve"
RAY_NODE_HEALTH_PATH = "/api/healthz"
RAY_SERVE_PROXY_HEALTH_PATH = "-/healthz"
SERVE_READINESS_FAILURE_THRESHOLD = 1
UNIFIED_HEALTH_CHECK_RAY = (2, 53, 0)  # pod.go supportsUnifiedHealthCheck
UPGRADE_TYPES = ("NewClusterWithIncrementalUpgrade", "NewCluster", "None")

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class KubeRayRejects(ValueError):
    """KubeRay's validation error (the message is KubeRay's)."""


def _env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env") or []}


def _env_value(container: dict[str, Any], name: str) -> str | None:
    for entry in container.get("env") or []:
        if entry["name"] == name:
            return str(entry.get("value", ""))
    return None


def validate_rayservice_metadata(metadata: dict[str, Any]) -> None:
    name = metadata.get("name", "")
    if len(name) > MAX_RAYSERVICE_NAME:
        raise KubeRayRejects(
            "The RayService metadata is invalid: RayService name should be no more than"
            f" {MAX_RAYSERVICE_NAME} characters"
        )
    if len(name) > 63 or not _DNS1035.match(name):
        raise KubeRayRejects(
            "The RayService metadata is invalid: RayService name should be a valid DNS1035 label"
        )


def _validate_group(name: str, group: dict[str, Any]) -> None:
    """validateRayGroupResources and validateRayGroupLabels."""
    params = group.get("rayStartParams") or {}
    has_start_resources = any(
        params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")
    )
    if has_start_resources and group.get("resources"):
        raise KubeRayRejects(
            "resource fields should not be set in both rayStartParams and Resources for"
            f" {name} group; please use only one"
        )
    if "labels" in params:
        raise KubeRayRejects(
            f"rayStartParams['labels'] is not supported for {name} group; please use the"
            " top-level Labels field instead"
        )
    for key, value in (group.get("labels") or {}).items():
        prefix, _, base = key.rpartition("/")
        if not _QUALIFIED_NAME.match(base) or len(base) > 63 or len(prefix) > 253:
            raise KubeRayRejects(f"invalid label key for {name} group: '{key}'")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise KubeRayRejects(f"invalid label value for key '{key}' in {name} group")


def _autoscaling(spec: dict[str, Any]) -> bool:
    return spec.get("enableInTreeAutoscaling") is True


def _autoscaling_v2(spec: dict[str, Any]) -> bool:
    return (spec.get("autoscalerOptions") or {}).get("version") == "v2"


def _validate_workers(spec: dict[str, Any], head: dict[str, Any]) -> None:
    autoscaling = _autoscaling(spec)
    v2_env = _env_value(head, RAY_ENABLE_AUTOSCALER_V2) in ("1", "true")
    for group in spec.get("workerGroupSpecs") or []:
        name = group.get("groupName", "")
        if not group["template"]["spec"].get("containers"):
            raise KubeRayRejects("workerGroupSpec should have at least one container")
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling and (low is None or high is None):
            raise KubeRayRejects(
                f"worker group {name} must set both minReplicas and maxReplicas when"
                " autoscaling is disabled"
            )
        if low is not None and low < 0:
            raise KubeRayRejects(f"worker group {name} has negative minReplicas {low}")
        if high is not None and high < 0:
            raise KubeRayRejects(f"worker group {name} has negative maxReplicas {high}")
        if low is not None and high is not None and low > high:
            raise KubeRayRejects(
                f"worker group {name} has minReplicas {low} greater than maxReplicas {high}"
            )
        _validate_group(name, group)
        idle = group.get("idleTimeoutSeconds")
        if idle is not None and idle < 0:
            raise KubeRayRejects(f"worker group {name}: idleTimeoutSeconds must be non-negative")
        if idle is not None and not (_autoscaling_v2(spec) or v2_env):
            raise KubeRayRejects(
                f"worker group {name}: idleTimeoutSeconds is set, but autoscaler v2 is not enabled"
            )
        if group.get("priority") and not (_autoscaling_v2(spec) or v2_env):
            raise KubeRayRejects(f"worker group {name}: priority is set ... autoscaler v2")
        if group.get("suspend") and autoscaling:
            raise KubeRayRejects(f"worker group {name} cannot be suspended with Autoscaler enabled")


def _validate_fault_tolerance(
    spec: dict[str, Any], annotations: dict[str, str], head: dict[str, Any]
) -> None:
    options = spec.get("gcsFaultToleranceOptions")
    params = spec["headGroupSpec"].get("rayStartParams") or {}
    env = _env_names(head)
    if annotations.get(FT_ANNOTATION) and options is not None:
        raise KubeRayRejects(
            f"{FT_ANNOTATION} annotation and GcsFaultToleranceOptions are both set."
        )
    enabled = annotations.get(FT_ANNOTATION, "").lower() == "true" or options is not None
    if not enabled and RAY_REDIS_ADDRESS in env:
        raise KubeRayRejects(
            f"{RAY_REDIS_ADDRESS} is set which implicitly enables GCS fault tolerance, but"
            " GcsFaultToleranceOptions is not set."
        )
    if options is not None:
        if params.get("redis-password"):
            raise KubeRayRejects(
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions"
                " is enabled - use GcsFaultToleranceOptions.RedisPassword instead"
            )
        if REDIS_PASSWORD in env:
            raise KubeRayRejects(
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions"
                " is enabled - use GcsFaultToleranceOptions.RedisPassword instead"
            )
        if RAY_REDIS_ADDRESS in env:
            raise KubeRayRejects(
                "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when"
                " GcsFaultToleranceOptions is enabled - use GcsFaultToleranceOptions.RedisAddress"
                " instead"
            )
        if annotations.get(EXTERNAL_STORAGE_NS_ANNOTATION):
            raise KubeRayRejects(
                "cannot set `ray.io/external-storage-namespace` annotation when"
                " GcsFaultToleranceOptions is enabled"
            )
        backend = options.get("backend") or "redis"
        if backend == "rocksdb":  # GCSFaultToleranceEmbeddedStorage gate: off by default
            raise KubeRayRejects(
                "the embedded RocksDB GCS fault tolerance backend requires the"
                " GCSFaultToleranceEmbeddedStorage feature gate to be enabled"
            )
        if options.get("storage") is not None:
            raise KubeRayRejects(
                "cannot set GcsFaultToleranceOptions.Storage when backend is 'redis'"
            )
    if params.get("redis-username") or REDIS_USERNAME in env:
        raise KubeRayRejects(
            "cannot set redis username in rayStartParams or environment variables - use"
            " GcsFaultToleranceOptions.RedisUsername instead"
        )


def validate_raycluster_spec(spec: dict[str, Any], annotations: dict[str, str]) -> None:
    """ValidateRayClusterSpec, in KubeRay's order."""
    head_containers = spec["headGroupSpec"]["template"]["spec"].get("containers") or []
    if not head_containers:
        raise KubeRayRejects("headGroupSpec should have at least one container")
    head = head_containers[RAY_CONTAINER_INDEX]
    _validate_group("Head", spec["headGroupSpec"])
    _validate_workers(spec, head)
    _validate_fault_tolerance(spec, annotations, head)
    if not _autoscaling(spec) and _env_value(head, RAY_ENABLE_AUTOSCALER_V2) in ("1", "true"):
        raise KubeRayRejects(
            f"environment variable {RAY_ENABLE_AUTOSCALER_V2} cannot be set when"
            " enableInTreeAutoscaling is false"
        )
    if _autoscaling(spec) and _autoscaling_v2(spec):
        pods = [spec["headGroupSpec"], *(spec.get("workerGroupSpecs") or [])]
        for group in pods:
            if group["template"]["spec"].get("restartPolicy", "Never") != "Never":
                raise KubeRayRejects(
                    "restartPolicy should be Never or unset when using autoscaler V2"
                )
    idle = (spec.get("autoscalerOptions") or {}).get("idleTimeoutSeconds")
    if idle is not None and idle < 0:
        raise KubeRayRejects("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    for gated in ("historyServerOptions", "networkPolicy", "tlsOptions"):
        if spec.get(gated) is not None:  # feature gates off by default in v1.7.0
            raise KubeRayRejects(f"spec.{gated} requires its feature gate to be enabled")
    if (spec.get("authOptions") or {}).get("mode") == "token" and not spec.get("rayVersion"):
        raise KubeRayRejects("authOptions.mode is 'token' but RayVersion was not specified.")


def validate_rayservice(service: dict[str, Any]) -> None:
    """ValidateRayServiceMetadata + ValidateRayServiceSpec of one RayService manifest."""
    metadata = service.get("metadata") or {}
    validate_rayservice_metadata(metadata)
    spec = service["spec"]
    cluster = spec["rayClusterConfig"]
    if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
        raise KubeRayRejects(
            "The RayService spec is invalid: K8s token auth mode is currently not supported"
            " for RayService"
        )
    try:
        validate_raycluster_spec(cluster, metadata.get("annotations") or {})
    except KubeRayRejects as exc:
        raise KubeRayRejects(f"The RayService spec is invalid: {exc}") from exc
    head_service = cluster["headGroupSpec"].get("headService") or {}
    if (head_service.get("metadata") or {}).get("name"):
        raise KubeRayRejects(
            "The RayService spec is invalid: spec.rayClusterConfig.headGroupSpec.headService"
            ".metadata.name should not be set"
        )
    kind = (spec.get("upgradeStrategy") or {}).get("type")
    if kind is not None and kind not in UPGRADE_TYPES:
        raise KubeRayRejects(
            f"The RayService spec is invalid: Spec.UpgradeStrategy.Type value {kind} is invalid"
        )
    delay = spec.get("rayClusterDeletionDelaySeconds")
    if delay is not None and delay < 0:
        raise KubeRayRejects(
            "The RayService spec is invalid: Spec.RayClusterDeletionDelaySeconds should be a"
            " non-negative integer"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _container_port(container: dict[str, Any], name: str, default: int) -> int:
    for port in container.get("ports") or []:
        if port.get("name") == name:
            return int(port["containerPort"])
    return default


def effective_readiness_probe(
    container: dict[str, Any],
    node_type: str,
    ray_start_params: dict[str, str],
    ray_version: str,
    creator: str = "RayService",
) -> dict[str, Any]:
    """The readiness probe the Ray container runs once KubeRay built the pod
    (initLivenessAndReadinessProbe, ENABLE_PROBES_INJECTION at its default)."""
    if container.get("readinessProbe") is not None:
        return copy.deepcopy(container["readinessProbe"])  # KubeRay keeps the user's
    agent = int(
        ray_start_params.get("dashboard-agent-listen-port", DEFAULT_DASHBOARD_AGENT_LISTEN_PORT)
    )
    dashboard = int(ray_start_params.get("dashboard-port", DEFAULT_DASHBOARD_PORT))
    wget = "wget --tries 1 -T {} -q -O- http://localhost:{}/{} | grep success"
    commands = [wget.format(2, agent, "api/local_raylet_healthz")]
    if node_type == "head":
        commands.append(wget.format(10, dashboard, "api/gcs_healthz"))
    probe: dict[str, Any] = {"failureThreshold": 10, "periodSeconds": 5}
    if _version(ray_version) >= UNIFIED_HEALTH_CHECK_RAY:
        probe["httpGet"] = {"path": RAY_NODE_HEALTH_PATH, "port": agent}
    else:
        probe["exec"] = {"command": ["bash", "-c", " && ".join(commands)]}
    if creator == "RayService" and node_type == "worker":
        serve_port = _container_port(container, SERVING_PORT_NAME, DEFAULT_SERVING_PORT)
        commands.append(wget.format(10, serve_port, RAY_SERVE_PROXY_HEALTH_PATH))
        probe.pop("httpGet", None)
        probe["exec"] = {"command": ["bash", "-c", " && ".join(commands)]}
        probe["failureThreshold"] = SERVE_READINESS_FAILURE_THRESHOLD
    return probe


def probe_needs_serve_proxy(probe: dict[str, Any]) -> bool:
    """Whether a probe asks the Serve proxy (`/-/healthz`), which only runs on nodes that
    have one: every node with `proxy_location: EveryNode`, only the head with `HeadOnly`."""
    command = " ".join((probe.get("exec") or {}).get("command") or [])
    path = (probe.get("httpGet") or {}).get("path", "")
    return RAY_SERVE_PROXY_HEALTH_PATH in command or path.endswith(RAY_SERVE_PROXY_HEALTH_PATH)


def workers_become_ready(service: dict[str, Any], proxy_location: str) -> list[str]:
    """Worker groups whose pods can never pass readiness under `proxy_location` (empty: all
    can). Serve's proxies run on every node with EveryNode, on the head with HeadOnly, and
    nowhere with Disabled."""
    cluster = service["spec"]["rayClusterConfig"]
    stuck = []
    for group in cluster.get("workerGroupSpecs") or []:
        container = group["template"]["spec"]["containers"][RAY_CONTAINER_INDEX]
        probe = effective_readiness_probe(
            container, "worker", group.get("rayStartParams") or {}, cluster.get("rayVersion", "")
        )
        if probe_needs_serve_proxy(probe) and proxy_location != "EveryNode":
            stuck.append(group["groupName"])
    return stuck


def cluster_hash(cluster_spec: dict[str, Any]) -> str:
    """What GenerateHashWithoutReplicasAndWorkersToDelete hashes (rayClusterSpecForHashing
    drops `suspend` first): the spec without replica counts, workersToDelete, tolerations,
    scheduling gates and upgradeStrategy. Returned as canonical JSON (equal iff equal)."""
    spec = copy.deepcopy(cluster_spec)
    spec.pop("suspend", None)
    spec.pop("upgradeStrategy", None)
    for pod in [spec["headGroupSpec"]["template"]["spec"]]:
        pod.pop("tolerations", None)
        pod.pop("schedulingGates", None)
    for group in spec.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
        group["template"]["spec"].pop("tolerations", None)
        group["template"]["spec"].pop("schedulingGates", None)
    return json.dumps(spec, sort_keys=True)
