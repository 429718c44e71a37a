"""deploy/k8s/ as a pod would see it, without a cluster (used by tests/e2e/test_k8s.py).

Also writes deploy/k8s/rules-configmap.yaml from rules/: `make k8s-rules`, before `kubectl apply -k`
(the file is generated, not committed, so it never drifts from rules/).
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
RULES = REPO / "rules"
RULES_CONFIGMAP = K8S / "rules-configmap.yaml"
RULES_CONFIGMAP_NAME = "rarewatch-rules"
HEADER = """\
# The rule pack, mounted at /etc/rarewatch/rules (deployment.yaml). Generated from the repository's
# rules/ by `make k8s-rules` (git-ignored: regenerate it after every change of rules/). To change the rules,
# edit rules/, run it, then `kubectl apply -k deploy/k8s/`: each pod reloads them when the kubelet has
# updated its mount (the config's watch_rules); `rarewatch_rules_pack_info` shows the version in use.
"""


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a manifest file (empty ones skipped), as kubectl reads them."""
    docs = [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: every document must be a mapping"
    return docs


def rules_configmap() -> dict[str, Any]:
    """The ConfigMap holding every file of rules/, each under its file name (as
    `kubectl create configmap rarewatch-rules --from-file=rules/` makes it)."""
    data = {p.name: p.read_text(encoding="utf-8") for p in sorted(RULES.glob("*.yaml"))}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": RULES_CONFIGMAP_NAME}, "data": data}


def render(document: dict[str, Any]) -> str:
    """A manifest with each multi-line value as a literal block, readable in review."""
    data = {k: LiteralScalarString(v) if "\n" in v else v for k, v in document["data"].items()}
    yaml = YAML()
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump({**document, "data": data}, out)
    return HEADER + out.getvalue()


def project_configmap(data: dict[str, str], mount: Path, items: list[dict[str, str]] | None = None) -> None:
    """Write a ConfigMap volume at `mount` the way the kubelet does: the files in a timestamped hidden
    folder, a `..data` link to it, and one link per key (`<key> -> ..data/<key>`), so that code reading
    the mount sees what a pod sees (hidden folders included)."""
    mount.mkdir(parents=True, exist_ok=True)
    update_configmap(data, mount, items)


def update_configmap(data: dict[str, str], mount: Path, items: list[dict[str, str]] | None = None) -> None:
    """The kubelet's atomic update of a mounted ConfigMap (its AtomicWriter): the new files in a new
    timestamped folder, `..data` swapped to it by a rename, the key links added or removed, and the old
    folder deleted last."""
    chosen = {item["path"]: data[item["key"]] for item in items} if items else dict(data)
    data_link = mount / "..data"
    old = data_link.resolve() if data_link.is_symlink() else None
    stamp = mount / f"..2026_01_01_00_00_00.{len(list(mount.glob('..2026_*'))) + 1:09d}"  # the old one stays
    for path, text in chosen.items():
        (stamp / path).parent.mkdir(parents=True, exist_ok=True)
        (stamp / path).write_text(text, encoding="utf-8")
    (mount / "..data_tmp").symlink_to(stamp.name)
    (mount / "..data_tmp").rename(data_link)
    tops = {path.split("/")[0] for path in chosen}
    for top in tops:
        if not (mount / top).is_symlink():
            (mount / top).symlink_to(f"..data/{top}")
    for link in mount.iterdir():
        if not link.name.startswith("..") and link.name not in tops:
            link.unlink()
    if old is not None:
        shutil.rmtree(old)


def write_rules_configmap() -> None:
    RULES_CONFIGMAP.write_text(render(rules_configmap()), encoding="utf-8")


if __name__ == "__main__":
    write_rules_configmap()
    print(f"wrote {RULES_CONFIGMAP.relative_to(REPO)}", file=sys.stderr)
