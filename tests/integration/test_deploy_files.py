"""The deployment files agree with each other and with the code.

No Docker engine or Kubernetes cluster is needed (none is started, nothing is
built): the Dockerfile, the compose example and the Kubernetes manifests are
parsed and compared with the package's own defaults (``config.BY_NAME``), its
console script and version (pyproject.toml) and its command-line parser, and
every environment they set is fed through ``config.load``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from proxbox_scheduler import cli, config
from proxbox_scheduler.config import BY_NAME, load
from proxbox_scheduler.core.schedule import parse_mode
from proxbox_scheduler.ops import healthcheck as health

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.example.yml"
COMPOSE_REPLICAS = ROOT / "docker-compose.replicas.example.yml"
COMPOSE_JOBS = ROOT / "docker-compose.jobs.example.yml"
JOBS_EXAMPLE = ROOT / "deploy" / "jobs.example.toml"
JOB_FILE = Path("/etc/proxbox-scheduler/jobs.toml")
"""Where the compose overlay and the Deployment put the job file."""
K8S = ROOT / "deploy" / "kubernetes"
DEPLOYMENT = K8S / "deployment.yaml"
DEPLOYMENT_REPLICAS = K8S / "deployment-replicas.yaml"
PDB = K8S / "poddisruptionbudget.yaml"
CRONJOB = K8S / "cronjob.yaml"
SECRET = K8S / "secret.example.yaml"

SERVICE = "proxbox-scheduler"
UID = 10001
# The environment of the seed's compose snippet (the spec, not a code default).
SEED_ENVIRONMENT = {
    "PROXBOX_MODE": "cron=0 */4 * * *",
    "PROXBOX_SCHEDULER_TZ": "America/Sao_Paulo",
    "PROXBOX_API_URL": "http://proxbox-api:8000",
}
SHUTDOWN_MARGIN_SECONDS = 5


# ---------------------------------------------------------------- readers


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def console_script() -> str:
    scripts = pyproject()["project"]["scripts"]
    (name,) = [name for name, target in scripts.items() if target == "proxbox_scheduler.__main__:main"]
    return name


def default(name: str) -> str:
    return BY_NAME[name].default


def http_port() -> int:
    return int(default("PROXBOX_SCHEDULER_HTTP_PORT"))


def yaml_files() -> list[Path]:
    return [COMPOSE, COMPOSE_REPLICAS, COMPOSE_JOBS, *sorted(K8S.glob("*.yaml")), *sorted(K8S.glob("*.yml"))]


def load_yaml(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    return doc


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit inside a continuation too
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, rest = full.partition(" ")
        out.append((instruction.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage; stage 0 holds what precedes the first FROM (global ARGs)."""
    split: list[list[tuple[str, str]]] = [[]]
    for instruction, rest in dockerfile_instructions():
        if instruction == "FROM":
            split.append([])
        split[-1].append((instruction, rest))
    return split


def assignments(rest: str) -> dict[str, str]:
    """``KEY=value KEY2="value 2"`` as ENV, LABEL and ARG write them."""
    pairs = {}
    for token in shlex.split(rest):
        assert "=" in token, f"use the KEY=value form, not {rest!r}"
        key, _, value = token.partition("=")
        pairs[key] = value
    return pairs


def global_args() -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction, rest in stages()[0]:
        if instruction == "ARG":
            found.update(assignments(rest))
    return found


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def stage_values(instruction_name: str, stage: list[tuple[str, str]]) -> dict[str, str]:
    args = {**global_args(), **{k: v for i, r in stage if i == "ARG" for k, v in assignments(r).items()}}
    found: dict[str, str] = {}
    for instruction, rest in stage:
        if instruction == instruction_name:
            for key, value in assignments(rest).items():
                found[key] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)
    return found


def final_env() -> dict[str, str]:
    return stage_values("ENV", final_stage())


def only(instruction_name: str, stage: list[tuple[str, str]]) -> str:
    values = [rest for instruction, rest in stage if instruction == instruction_name]
    assert len(values) == 1, f"expected one {instruction_name} in the final stage, found {values}"
    return values[0]


def exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list), f"{rest!r} is not the JSON (exec) form"
    assert all(isinstance(item, str) for item in value)
    return value


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options and its exec-form command."""
    match = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(\[.*\])", only("HEALTHCHECK", final_stage()))
    assert match, "HEALTHCHECK must be `[--options] CMD [json array]`"
    options = dict(opt.removeprefix("--").split("=", 1) for opt in match.group(1).split())
    return options, exec_form(match.group(2))


def healthcheck_command() -> list[str]:
    return healthcheck()[1]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    assert match, f"write durations in seconds, e.g. 5s, not {duration!r}"
    return float(match.group(1))


def compose_service() -> dict[str, Any]:
    return load_yaml(COMPOSE)["services"][SERVICE]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (only_container,) = pod_spec(doc)["containers"]
    return only_container


def k8s_env(doc: dict[str, Any]) -> dict[str, str]:
    """The container's environment; the store URL (a secret) is taken from the example Secret."""
    env = {}
    for item in container(doc).get("env", []):
        if item["name"] == "PROXBOX_SCHEDULER_STATE_URL":
            ref = item["valueFrom"]["secretKeyRef"]
            secret = load_yaml(SECRET)
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
            continue
        assert "value" in item, f"{item['name']}: the manifests set plain values only"
        assert isinstance(item["value"], str), f"{item['name']}: env values must be quoted strings"
        env[item["name"]] = item["value"]
    return env


def image_env_plus(env: dict[str, str]) -> dict[str, str]:
    """What the process sees: the image's ENV overridden by the deployment's."""
    return {**final_env(), **env}


def subcommands() -> set[str]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def k8s_manifests() -> list[dict[str, Any]]:
    return [load_yaml(DEPLOYMENT), load_yaml(CRONJOB), load_yaml(DEPLOYMENT_REPLICAS)]


def quantity_bytes(text: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    match = re.fullmatch(r"(\d+)([KMG]i?)?", str(text))
    assert match, f"unsupported quantity {text!r}"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


def effective(env: dict[str, str], name: str) -> str:
    return env.get(name, default(name))


# ---------------------------------------------------------------- every file


def test_every_yaml_file_parses_to_mappings() -> None:
    files = yaml_files()
    assert {COMPOSE, DEPLOYMENT, CRONJOB, SECRET} <= set(files)
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs, f"{path.name} is empty"
        assert all(isinstance(d, dict) for d in docs), path.name


def test_every_variable_named_in_a_deploy_file_exists() -> None:
    for path in [DOCKERFILE, *yaml_files()]:
        named = set(re.findall(r"\bPROXBOX_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
        unknown = named - set(BY_NAME)
        assert not unknown, f"{path.name} names variables the code does not know: {sorted(unknown)}"


def test_the_port_is_the_codes_default_everywhere() -> None:
    port = http_port()
    assert final_env().get("PROXBOX_SCHEDULER_HTTP_PORT", str(port)) == str(port)
    assert only("EXPOSE", final_stage()) in (str(port), f"{port}/tcp")

    published = [str(p) for p in compose_service()["ports"]]
    assert published and all(p.rsplit(":", 1)[-1] == str(port) for p in published), published
    assert effective(compose_service()["environment"], "PROXBOX_SCHEDULER_HTTP_PORT") == str(port)

    deployment = load_yaml(DEPLOYMENT)
    assert effective(k8s_env(deployment), "PROXBOX_SCHEDULER_HTTP_PORT") == str(port)
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports == {"http": port}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_probes_hit_livez_and_readyz_on_the_http_port() -> None:
    deployment = load_yaml(DEPLOYMENT)
    named = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container(deployment)[probe]["httpGet"]
        assert get["path"] == path
        assert named.get(get["port"], get["port"]) == http_port(), probe


def test_the_same_non_root_uid_in_the_image_and_the_pods() -> None:
    user = only("USER", final_stage())
    assert user.split(":")[0] == str(UID), "USER must be numeric so runAsNonRoot can verify it"
    assert f"--uid {UID}" in " ".join(rest for i, rest in final_stage() if i == "RUN")
    for doc in k8s_manifests():
        pod = pod_spec(doc)["securityContext"]
        ctx = container(doc)["securityContext"]
        assert pod["runAsNonRoot"] is True and ctx["runAsNonRoot"] is True
        assert pod["runAsUser"] == ctx["runAsUser"] == UID
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert not ctx["capabilities"].get("add")
        assert "privileged" not in ctx or ctx["privileged"] is False
        seccomp = ctx.get("seccompProfile") or pod.get("seccompProfile")
        assert seccomp == {"type": "RuntimeDefault"}, doc["kind"]


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_on_slim_python_312() -> None:
    args = global_args()
    froms = [stage[0][1].split()[0] for stage in stages()[1:]]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base) for base in froms]
    assert len(bases) >= 2
    assert all(base == "python:3.12-slim" for base in bases), bases
    builder_from = stages()[1][0][1]
    assert re.search(r"\bAS\s+builder\b", builder_from, re.IGNORECASE)
    assert any("pip wheel" in rest for i, rest in stages()[1] if i == "RUN")
    final_text = " ".join(rest for _, rest in final_stage())
    assert "from=builder" in final_text, "the final stage installs the builder's wheels"
    assert "--no-index" in final_text, "the final stage installs nothing from an index"


def test_dockerfile_environment_matches_the_code() -> None:
    env = final_env()
    assert env["PROXBOX_MODE"] == default("PROXBOX_MODE") == "off"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for instruction, rest in final_stage():
        if instruction == "RUN" and "pip install" in rest:
            assert "PIP_NO_CACHE_DIR=1" in rest or "--no-cache-dir" in rest, "no pip cache in the image"


def test_dockerfile_runs_the_console_script_under_tini() -> None:
    script = console_script()
    assert script == cli.PROG == SERVICE
    installs = " ".join(rest for i, rest in final_stage() if i == "RUN")
    assert re.search(r"apt-get install\b.*\btini\b", installs)
    assert exec_form(only("ENTRYPOINT", final_stage())) == ["tini", "--", script]
    assert exec_form(only("CMD", final_stage())) == ["run"]
    assert healthcheck_command() == [script, "healthcheck"]


def test_healthchecks_wait_longer_than_the_subcommand() -> None:
    options, _ = healthcheck()
    compose_check = compose_service()["healthcheck"]
    for where, timeout in (("Dockerfile", options["timeout"]), ("compose", compose_check["timeout"])):
        assert seconds(timeout) > health.TIMEOUT, f"{where}: killed before it answers"
    assert seconds(options["interval"]) > seconds(options["timeout"])


def test_subcommands_used_by_the_deploy_files_exist() -> None:
    used = {exec_form(only("CMD", final_stage()))[0], healthcheck_command()[1]}
    used |= {args[0] for doc in k8s_manifests() if (args := container(doc).get("args"))}
    missing = used - subcommands()
    assert not missing, f"the deploy files call subcommands the CLI does not have: {sorted(missing)}"


def test_dockerfile_labels_match_pyproject() -> None:
    project = pyproject()["project"]
    labels = stage_values("LABEL", final_stage())
    prefix = "org.opencontainers.image."
    assert labels[prefix + "title"] == project["name"]
    assert labels[prefix + "description"] == project["description"]
    assert labels[prefix + "version"] == project["version"]
    assert labels[prefix + "licenses"] == project["license"]["text"]
    assert labels[prefix + "source"].startswith("https://")


def test_the_build_context_holds_what_the_builder_copies() -> None:
    allowed = {
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    ignore_lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    assert "*" in ignore_lines, ".dockerignore starts from an empty context and lists what is sent"
    for instruction, rest in dockerfile_instructions():
        if instruction != "COPY" or "--from" in rest:
            continue
        *sources, _destination = shlex.split(rest)
        for source in sources:
            name = source.removeprefix("./").rstrip("/")
            assert name in allowed, f"COPY {source}: excluded by .dockerignore"
            assert (ROOT / name).exists(), f"COPY {source}: not in the repository"
    pyproject_readme = pyproject()["project"].get("readme")
    if pyproject_readme:  # setuptools reads it while building the wheel
        assert pyproject_readme in allowed


# ---------------------------------------------------------------- compose


def test_compose_has_the_seed_snippet_and_hardening() -> None:
    doc = load_yaml(COMPOSE)
    assert set(doc) <= {"services", "secrets", "volumes", "networks", "configs", "name"}
    service = compose_service()
    assert service["image"] == f"{SERVICE}:{pyproject()['project']['version']}"
    assert service["restart"] == "unless-stopped"
    for name, value in SEED_ENVIRONMENT.items():
        assert service["environment"][name] == value
    depends = service["depends_on"]
    assert "proxbox-api" in depends
    assert service["read_only"] is True
    assert service["healthcheck"]["test"] == ["CMD", console_script(), "healthcheck"]
    assert "PROXBOX_API_KEY" not in service["environment"], "the key comes from a secret file"
    # every service it depends on is defined, so the file is complete on its own
    assert set(depends) <= set(doc["services"])


def test_compose_key_is_a_secret_file() -> None:
    doc = load_yaml(COMPOSE)
    service = compose_service()
    (secret,) = service["secrets"]
    name = secret if isinstance(secret, str) else secret["source"]
    target = name if isinstance(secret, str) else secret.get("target", name)
    assert name in doc["secrets"]
    assert service["environment"]["PROXBOX_API_KEY_FILE"] == f"/run/secrets/{target}"


def test_compose_stops_after_the_shutdown_grace() -> None:
    service = compose_service()
    grace = float(effective(service["environment"], "PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS"))
    assert seconds(service["stop_grace_period"]) > grace + SHUTDOWN_MARGIN_SECONDS


# ---------------------------------------------------------------- Kubernetes


def test_deployment_runs_one_scheduler_at_a_time() -> None:
    deployment = load_yaml(DEPLOYMENT)
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_replicas_roll_over_with_a_shared_store_and_a_disruption_budget() -> None:
    single, several, pdb = load_yaml(DEPLOYMENT), load_yaml(DEPLOYMENT_REPLICAS), load_yaml(PDB)
    assert several["metadata"]["name"] == single["metadata"]["name"]  # one or the other, never both
    assert several["spec"]["replicas"] >= 2
    strategy = several["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert config.load(image_env_plus(k8s_env(several)) | {"PROXBOX_API_KEY_FILE": ""}).state_url
    assert "PROXBOX_SCHEDULER_STATE_URL" not in k8s_env(single)
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["minAvailable"] == 1
    labels = several["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_compose_replicas_share_a_store_of_the_stack() -> None:
    doc = load_yaml(COMPOSE_REPLICAS)
    service = doc["services"][SERVICE]
    assert service["deploy"]["replicas"] >= 2 and "ports" not in service
    url = config.load({**service["environment"], "PROXBOX_API_KEY_FILE": ""}).state_url
    host = url.split("@", 1)[1].split(":", 1)[0]
    assert host in doc["services"] and host in service["depends_on"]
    assert not url.rstrip("/").endswith("/netbox"), "a database of its own, not NetBox's"
    assert service["stop_grace_period"] == compose_service()["stop_grace_period"]


def test_pods_outlive_the_shutdown_grace() -> None:
    for doc in k8s_manifests():
        grace = float(effective(k8s_env(doc), "PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS"))
        assert pod_spec(doc)["terminationGracePeriodSeconds"] > grace + SHUTDOWN_MARGIN_SECONDS, doc["kind"]


def test_cronjob_runs_once_without_overlap_or_server() -> None:
    cronjob = load_yaml(CRONJOB)
    assert cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_spec(cronjob)
    assert pod["restartPolicy"] == "Never"
    spec = container(cronjob)
    argv = spec.get("command") or exec_form(only("ENTRYPOINT", final_stage()))
    argv = [*argv, *(spec.get("args") or exec_form(only("CMD", final_stage())))]
    assert argv[-2:] == [console_script(), "once"], argv
    assert k8s_env(cronjob)["PROXBOX_SCHEDULER_HTTP_PORT"] == "0"
    assert not {"livenessProbe", "readinessProbe", "ports"} & set(spec), "no server in a CronJob pod"
    timeout = float(effective(k8s_env(cronjob), "PROXBOX_API_TIMEOUT"))
    assert cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > timeout


def test_cronjob_schedule_matches_the_deployments_mode() -> None:
    cronjob, deployment = load_yaml(CRONJOB), load_yaml(DEPLOYMENT)
    mode = parse_mode(k8s_env(deployment)["PROXBOX_MODE"])
    assert mode.kind == "cron"
    assert cronjob["spec"]["schedule"] == mode.cron
    assert cronjob["spec"]["timeZone"] == k8s_env(deployment)["PROXBOX_SCHEDULER_TZ"]
    assert k8s_env(cronjob)["PROXBOX_SCHEDULER_TZ"] == cronjob["spec"]["timeZone"]


def test_manifests_use_the_packaged_image() -> None:
    version = pyproject()["project"]["version"]
    for doc in k8s_manifests():
        assert container(doc)["image"] == f"{SERVICE}:{version}"


def test_the_key_is_mounted_from_the_example_secret() -> None:
    secret = load_yaml(SECRET)
    assert secret["kind"] == "Secret"
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for doc in k8s_manifests():
        env = k8s_env(doc)
        assert "PROXBOX_API_KEY" not in env, "the key is a mounted file, not an env value"
        volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
        key_files = set()
        for mount in container(doc)["volumeMounts"]:
            source = volumes[mount["name"]].get("secret")
            if source is None:
                continue
            assert mount.get("readOnly") is True
            assert source["secretName"] == secret["metadata"]["name"]
            for item in source["items"]:
                assert item["key"] in keys
                key_files.add(f"{mount['mountPath'].rstrip('/')}/{item['path']}")
        assert env["PROXBOX_API_KEY_FILE"] in key_files, doc["kind"]


def test_memory_limit_holds_the_largest_event() -> None:
    for doc in k8s_manifests():
        resources = container(doc)["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        limit = quantity_bytes(resources["limits"]["memory"])
        assert quantity_bytes(resources["requests"]["memory"]) <= limit
        assert int(effective(k8s_env(doc), "PROXBOX_SSE_MAX_EVENT_BYTES")) < limit, doc["kind"]


# ---------------------------------------------------------------- the code accepts it all


def test_every_deploy_environment_loads(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("example-key\n", encoding="utf-8")
    environments = {
        "Dockerfile": (final_env(), False),
        "compose": (image_env_plus(compose_service()["environment"]), False),
        "deployment": (image_env_plus(k8s_env(load_yaml(DEPLOYMENT))), False),
        "deployment-replicas": (image_env_plus(k8s_env(load_yaml(DEPLOYMENT_REPLICAS))), False),
        "cronjob": (image_env_plus(k8s_env(load_yaml(CRONJOB))), True),  # `once` needs a target
    }
    for where, (env, once) in environments.items():
        env = {k: str(key) if k == "PROXBOX_API_KEY_FILE" else str(v) for k, v in env.items()}
        loaded = config.load(env, need_target=True if once else None)
        assert loaded.api_key == ("example-key" if "PROXBOX_API_KEY_FILE" in env else ""), where
        assert not loaded.warnings, f"{where}: {loaded.warnings}"
        if where in ("compose", "deployment", "deployment-replicas"):
            assert loaded.mode.kind == "cron" and loaded.http_port == http_port(), where


STATE_DIR = "/var/lib/proxbox-scheduler"


def test_the_state_file_lives_on_a_volume_where_the_scheduler_runs_for_long() -> None:
    state = f"{STATE_DIR}/state.db"
    assert final_env()["PROXBOX_SCHEDULER_STATE_PATH"] == state
    assert f'VOLUME ["{STATE_DIR}"]' in DOCKERFILE.read_text(encoding="utf-8")
    assert any("install -d -o 10001 -g 10001" in rest and STATE_DIR in rest for _, rest in final_stage())
    service = compose_service()
    assert service["environment"]["PROXBOX_SCHEDULER_STATE_PATH"] == state
    mounts = dict(volume.split(":", 1) for volume in service["volumes"])
    assert mounts["proxbox_scheduler_state"] == STATE_DIR
    assert "proxbox_scheduler_state" in load_yaml(COMPOSE)["volumes"]
    deployment = load_yaml(DEPLOYMENT)
    assert k8s_env(deployment)["PROXBOX_SCHEDULER_STATE_PATH"] == state
    by_mount = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert "emptyDir" in volumes[by_mount[STATE_DIR]]


def test_the_cronjob_keeps_no_state_between_its_pods() -> None:
    assert k8s_env(load_yaml(CRONJOB))["PROXBOX_SCHEDULER_STATE_PATH"] == "memory"


def loads_example_jobs(env: dict[str, str], job_file: Path, tmp_path: Path) -> None:
    """The example job file under a deployment's environment: its jobs, on that environment's
    proxbox-api with the key from its key file (here a temporary one)."""
    key = tmp_path / "api-key"
    key.write_text("example-key-0123456789", encoding="utf-8")
    loaded = load({**env, "PROXBOX_SCHEDULER_CONFIG": str(job_file), "PROXBOX_API_KEY_FILE": str(key)})
    assert [job.name for job in loaded.jobs] == ["full", "vms"]
    vms = loaded.job("vms")
    assert vms.sync_path == "/virtualization/virtual-machines/create/stream"
    assert vms.sync_params == (("endpoint_ids", "1,2"),)
    assert all(job.api_url == env["PROXBOX_API_URL"] and job.api_key for job in loaded.jobs)
    assert not loaded.warnings


def test_the_job_file_configmap_is_the_example_file_mounted_where_the_variable_would_name_it(
    tmp_path: Path,
) -> None:
    configmap = load_yaml(K8S / "jobs.configmap.yaml")
    assert configmap["data"]["jobs.toml"] == JOBS_EXAMPLE.read_text(encoding="utf-8")
    deployment = load_yaml(DEPLOYMENT)
    by_mount = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes[by_mount[str(JOB_FILE.parent)]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert JOB_FILE.name in configmap["data"]
    loads_example_jobs(image_env_plus(k8s_env(deployment)), JOBS_EXAMPLE, tmp_path)


def test_the_compose_jobs_overlay_mounts_the_example_file_and_names_it(tmp_path: Path) -> None:
    overlay = load_yaml(COMPOSE_JOBS)
    service = overlay["services"][SERVICE]
    assert service["environment"] == {"PROXBOX_SCHEDULER_CONFIG": str(JOB_FILE)}
    (mount,) = service["configs"]
    assert mount["target"] == str(JOB_FILE)
    source = (ROOT / overlay["configs"][mount["source"]]["file"]).resolve()
    assert source == JOBS_EXAMPLE
    merged = {**compose_service()["environment"], **service["environment"]}  # compose merges maps
    loads_example_jobs(image_env_plus(merged), source, tmp_path)
