"""The image copies every package the wheel is built from (a package left out fails only when deployed)."""

import re
import tomllib

from tests.paths import ROOT


def test_the_dockerfile_copies_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\S+) \1$", (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.M))
    assert packages <= copied, f"Dockerfile lacks COPY for {sorted(packages - copied)}"
