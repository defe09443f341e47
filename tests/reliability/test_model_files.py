"""Model files: a flipped byte in any file of a store entry, or a file swapped in from another
variant, refuses to load naming the file (also through a real `bentoml serve`); manifests never
lead outside their folder; nothing on the load path unpickles."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from harness import BENTOML_HOME, have_models, start_service, stop_service

from rec_models.serving.store import load_store_model, verify_files

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = ["adrec-encoder-int8", "adrec-encoder-fp32", "adrec-scorer"]

pytestmark = pytest.mark.skipif(not have_models(), reason="no models: run `make export` first")


def store_copy(name: str, dest: Path) -> tuple[Path, dict[str, str]]:
    path, metadata = load_store_model(f"{name}:latest", verify=False)
    shutil.copytree(path, dest / name)
    return dest / name, dict(metadata["sha256"])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ENTRIES)
def test_a_flipped_byte_in_any_file_is_refused_naming_it(name, tmp_path):
    folder, manifest = store_copy(name, tmp_path)
    verify_files(folder, manifest)  # the intact copy passes
    for file in manifest:
        original = (folder / file).read_bytes()
        flip_byte(folder / file)
        with pytest.raises(ValueError, match=rf"{re.escape(file)}: sha256 .* does not match"):
            verify_files(folder, manifest)
        (folder / file).write_bytes(original)


def test_a_file_swapped_between_variants_is_refused(tmp_path):
    int8, manifest = store_copy("adrec-encoder-int8", tmp_path)
    fp32, _ = store_copy("adrec-encoder-fp32", tmp_path)
    shutil.copyfile(fp32 / "model.onnx", int8 / "model.onnx")
    with pytest.raises(ValueError, match=r"model\.onnx: sha256"):
        verify_files(int8, manifest)


def test_manifests_and_links_never_lead_outside_the_folder(tmp_path):
    folder, manifest = store_copy("adrec-encoder-int8", tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("not a model")
    for name in ("../secret.txt", str(outside), "a/../../secret.txt", "bad\\name"):
        with pytest.raises(ValueError, match=r"outside the folder|not a file name"):
            verify_files(folder, {**manifest, name: "0" * 64})
    (folder / "extra.onnx").symlink_to(outside)
    with pytest.raises(ValueError, match=r"extra\.onnx: a link that leads outside"):
        verify_files(folder, manifest)
    (folder / "extra.onnx").unlink()
    (folder / "notes.txt").write_text("planted")
    with pytest.raises(ValueError, match=r"notes\.txt: not in the sha256 manifest"):
        verify_files(folder, manifest)


def test_the_service_refuses_a_corrupted_store_naming_the_file(tmp_path):
    """A store with the int8 encoder and a scorer whose user tower has one flipped byte: the
    service never turns ready, and /info's error names the file."""
    home = tmp_path / "home"
    for name in ("adrec-encoder-int8", "adrec-scorer"):
        shutil.copytree(BENTOML_HOME / "models" / name, home / "models" / name, symlinks=True)
    version = (home / "models" / "adrec-scorer" / "latest").read_text().strip()
    flip_byte(home / "models" / "adrec-scorer" / version / "user_tower.onnx")
    with pytest.raises(pytest.fail.Exception, match=r"user_tower\.onnx: sha256") as failed:
        svc = start_service(
            tmp_path / "serve.log", BENTOML_HOME=str(home), ADREC_WORKERS="1",
            ADREC_ENCODER_VARIANT="int8",
        )  # fmt: skip
        stop_service(svc)  # reached only if it (wrongly) became ready
    assert "the service failed to load" in str(failed.value)


LOADERS = [ROOT / "service.py", *sorted((ROOT / "rec_models" / "serving").rglob("*.py"))]
UNPICKLERS = re.compile(
    r"\bimport (c?pickle|dill|joblib|cloudpickle|shelve)\b|\bfrom (c?pickle|dill|joblib|"
    r"cloudpickle|shelve) import|torch\.load|allow_pickle\s*=\s*True|yaml\.(unsafe_)?load\(|"
    r"\bpickle\.loads?\(|pandas\.read_pickle|\bmarshal\.loads?\("
)
NP_LOAD = re.compile(r"np\.load\(([^)]*)\)")


def test_no_pickle_on_the_load_path():
    assert len(LOADERS) > 10
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in LOADERS
            for m in UNPICKLERS.finditer(p.read_text())]  # fmt: skip
    assert hits == []
    loads = [(p, m.group(1)) for p in LOADERS for m in NP_LOAD.finditer(p.read_text())]
    assert loads and all("allow_pickle=False" in args for _, args in loads), loads
