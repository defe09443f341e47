"""A model store with two scorer versions, for the hot-swap benchmark and the server tests.

The encoders and the first scorer version are links into the real store (`make export`'s);
version "2" is the same model with its calibration shifted (other click probabilities, the same
ranking), published through export.store as `make retrain` would publish a version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PUBLISH_V2 = """
import json, shutil, tempfile
from pathlib import Path
import bentoml
from export.store import publish
model = bentoml.models.get("adrec-scorer:latest")
meta = {k: v for k, v in model.info.metadata.items() if k not in ("sha256", "libraries")}
with tempfile.TemporaryDirectory() as tmp:
    for f in Path(model.path).iterdir():
        if f.name != "model.yaml":
            shutil.copy2(f, tmp)
    cfg = json.loads((Path(tmp) / "config.json").read_text())
    cfg["calibration"]["b"] += 0.5
    (Path(tmp) / "config.json").write_text(json.dumps(cfg))
    print(publish(Path(tmp), "adrec-scorer", meta, version="2"))
"""


def two_version_store(source: Path, root: Path) -> tuple[Path, str]:
    """(BENTOML_HOME, the first version's string) of a store under `root` holding the
    encoders of `source` and scorer versions <first> and "2" (the newest)."""
    home = root / "bentoml_home"
    models = home / "models"
    models.mkdir(parents=True)
    for folder in (source / "models").glob("adrec-encoder-*"):
        (models / folder.name).symlink_to(folder)
    first = (source / "models" / "adrec-scorer" / "latest").read_text().strip()
    scorer = models / "adrec-scorer"
    scorer.mkdir()
    (scorer / first).symlink_to(source / "models" / "adrec-scorer" / first)
    (scorer / "latest").write_text(first)
    env = {**os.environ, "BENTOML_HOME": str(home)}
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", PUBLISH_V2], env=env, cwd=repo, check=True,
                   capture_output=True)  # fmt: skip
    return home, first
