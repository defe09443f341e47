"""The container recipe without podman: the Dockerfile rendered from the repository's bentofile,
the base image recipe, the serving set, the GPU switch, the run command line."""

from __future__ import annotations

import re
import resource
import shlex
from pathlib import Path

import pytest
import yaml
from bentoml._internal.bento.build_config import BentoBuildConfig

from rec_models.config import ROOT
from rec_models.deploy import bento as bento_mod
from rec_models.deploy.base_image import BaseRecipe
from rec_models.deploy.context import GPU_RUNTIME, image_requirements, render_dockerfile
from rec_models.deploy.runner import rlimit_flags, run_command
from rec_models.deploy.tools import ContainerError, require
from rec_models.deploy.wheelhouse import forbidden_wheels

TRAINING_STACK = ("torch", "transformers", "optimum", "onnxruntime-gpu", "nvidia")


@pytest.fixture(scope="module")
def dockerfile(tmp_path_factory) -> list[str]:
    config = BentoBuildConfig.from_file(str(ROOT / "bentofile.yaml"))
    bento_fs = tmp_path_factory.mktemp("bento")
    text = render_dockerfile(list(config.envs), bento_fs, BaseRecipe().tag())
    # Join continuation lines: one instruction per item.
    return [line for line in text.replace("\\\n", " ").splitlines() if line and line[0] != "#"]


def instructions(lines: list[str], keyword: str) -> list[str]:
    return [line for line in lines if line.split(maxsplit=1)[0].upper() == keyword]


def test_from_the_local_base_image_and_nothing_from_the_network(dockerfile):
    assert instructions(dockerfile, "FROM") == [f"FROM {BaseRecipe().tag()} AS base-container"]
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert "pip install --no-index" in runs and "--find-links /wheelhouse" in runs
    # The wheelhouse is bind-mounted for that one RUN, never copied into a layer.
    assert "--mount=type=bind,source=wheelhouse,target=/wheelhouse" in runs
    assert not [c for c in instructions(dockerfile, "COPY") if "wheelhouse" in c]
    assert "uv " not in runs and "curl -" not in runs  # BentoML's network installers are gone


def test_non_root_ports_healthcheck_entrypoint(dockerfile):
    users = instructions(dockerfile, "USER")
    assert users and users[-1] == "USER bentoml"
    assert "useradd -m -u $BENTO_USER_UID" in " ".join(instructions(dockerfile, "RUN"))
    exposed = {p for line in instructions(dockerfile, "EXPOSE") for p in line.split()[1:]}
    assert {"3000", "8001"} <= exposed
    (health,) = instructions(dockerfile, "HEALTHCHECK")
    probe = r"CMD curl -fsS \"http://127\.0\.0\.1:\$\{BENTOML_PORT:-3000\}/readyz\""
    assert re.search(probe, health)
    assert "curl" in BaseRecipe().packages  # the health check's tool is in the base image
    assert dockerfile[-1] == 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]'
    assert dockerfile.index(users[-1]) < dockerfile.index(dockerfile[-1])


def test_bentofile_envs_become_image_envs(dockerfile):
    envs = {e["name"]: e["value"] for e in bento_mod.bentofile()["envs"]}
    assert "ADREC_DEVICE" in envs
    for name, value in envs.items():
        arg = f"ARG {name}" + (f"={shlex.quote(value)}" if value else "")
        assert arg in dockerfile and f"ENV {name}=${name}" in dockerfile


def test_serve_set_has_no_training_stack_and_gpu_is_one_line():
    packages = bento_mod.serve_packages()
    assert any(p.startswith("onnxruntime==") for p in packages)
    assert not [p for p in packages if p.lower().startswith(TRAINING_STACK)]
    reqs = "\n".join(["bentoml==1.4.40", *packages])
    cpu, gpu = image_requirements(reqs, gpu=False), image_requirements(reqs, gpu=True)
    assert cpu.splitlines() == reqs.splitlines()
    changed = [(a, b) for a, b in zip(cpu.splitlines(), gpu.splitlines(), strict=True) if a != b]
    assert changed == [("onnxruntime==1.32.0", GPU_RUNTIME)]
    with pytest.raises(ContainerError, match="expected one 'onnxruntime=="):
        image_requirements("bentoml==1.4.40\n", gpu=True)


def test_forbidden_wheels_catch_torch_and_cuda_but_not_nvml(tmp_path: Path):
    names = [
        "torch-2.13.0-cp311-cp311-linux_x86_64.whl",
        "nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl",
        "nvidia_cuda_runtime-13.5.37-py3-none-manylinux2014_x86_64.whl",  # CUDA 13: no -cu suffix
        "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_27_x86_64.whl",
        "nvidia_ml_py-13.615.71-py3-none-any.whl",  # bentoml's NVML binding: no CUDA in it
        "onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.whl",
        "tokenizers-0.22.2-cp39-abi3-manylinux_2_17_x86_64.whl",
    ]
    for name in names:
        (tmp_path / name).touch()
    found = [n.split("-")[0] for n in forbidden_wheels(tmp_path)]
    assert found == ["nvidia", "nvidia", "onnxruntime", "torch"]


def test_base_recipe_is_debian_python311_and_keyed_by_its_content():
    recipe = BaseRecipe()
    assert recipe.suite == "bookworm" and recipe.variant == "minbase"
    assert {"python3", "python3-venv", "ca-certificates", "curl"} <= set(recipe.packages)
    other = BaseRecipe(packages=(*recipe.packages, "less"))
    assert other.key() != recipe.key() and recipe.key() == BaseRecipe().key()
    assert recipe.tag().endswith(recipe.key()) and recipe.key() in recipe.tarball().name


def test_missing_tool_is_named_with_its_install_command():
    with pytest.raises(ContainerError) as err:
        require("sh", "adrec-no-such-tool")
    assert str(err.value) == (
        "missing tool 'adrec-no-such-tool': install it with "
        "`apt-get install -y podman buildah debootstrap runc`"
    )


def test_run_command_uses_limits_the_runtime_accepts_and_loopback_ports():
    flags = rlimit_flags()
    assert flags[:2] == ["--runtime", "runc"]
    limits = dict(f.split("=", 1) for f in flags if "=" in f)
    nofile, nproc = (int(limits[k].split(":")[0]) for k in ("nofile", "nproc"))
    hard_nofile, hard_nproc = (resource.getrlimit(r)[1] for r in (7, 6))
    assert 0 < nofile <= hard_nofile or hard_nofile == resource.RLIM_INFINITY
    assert 0 < nproc <= int(Path("/proc/sys/kernel/pid_max").read_text())
    assert nproc <= hard_nproc or hard_nproc == resource.RLIM_INFINITY
    cmd = run_command("localhost/adrec:x", 4000, 4001, {"ADREC_DEVICE": "cpu"})
    assert "127.0.0.1:4000:3000" in cmd and "127.0.0.1:4001:8001" in cmd
    assert "--env=ADREC_DEVICE=cpu" in cmd and cmd[-1] == "localhost/adrec:x"


def test_reused_bento_must_match_the_working_tree(tmp_path: Path):
    bento = tmp_path / "adrec" / "v1"
    for rel, data in bento_mod.included_files().items():
        (bento / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (bento / "src" / rel).write_bytes(data)
    reqs = bento / "env" / "python" / "requirements.txt"
    reqs.parent.mkdir(parents=True)
    reqs.write_text("\n".join(["bentoml==1.4.40", *bento_mod.serve_packages()]) + "\n")
    envs = bento_mod.bentofile()["envs"]
    # a Bento built now lists every scorer version of the store (issue 14)
    from rec_models.serving.store import SCORER_NAME
    from rec_models.versions import list_versions

    models = [{"tag": v.tag} for v in list_versions(SCORER_NAME)]
    (bento / "bento.yaml").write_text(yaml.safe_dump({"envs": envs, "models": models}))
    assert bento_mod.is_current(bento)
    service = bento / "src" / "service.py"
    service.write_bytes(service.read_bytes() + b"\n# edited\n")
    assert not bento_mod.is_current(bento)
    service.write_bytes(bento_mod.included_files()["service.py"])
    reqs.write_text("\n".join(["bentoml==1.4.40", *bento_mod.serve_packages()]) + "\n")
    assert bento_mod.is_current(bento)
    extra = {"name": "ADREC_EXTRA", "value": "1"}
    (bento / "bento.yaml").write_text(yaml.safe_dump({"envs": [*envs, extra]}))
    assert not bento_mod.is_current(bento)
    reqs.write_text("bentoml==1.4.40\nonnxruntime==1.31.0\n")
    assert not bento_mod.is_current(bento)
