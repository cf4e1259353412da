#!/usr/bin/env python3
"""Checks the CI examples in ci/: every YAML file parses, and each says what the
README and ci/Dockerfile promise (shards from the CI system's own parallelism,
JUnit collected, only NET_ADMIN and NET_RAW added, the default seccomp profile).
Run by CTest ("ci: ..."); exit 1 with one line per problem."""
import pathlib
import re
import sys

import yaml

ci = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent / "ci")
problems = []


def check(ok, file, what):
    if not ok:
        problems.append(f"{file}: {what}")


def load(name):
    path = ci / name
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: does not parse: {e}")
        return None


def shard_arg(command):
    """The K/N of `--shard K/N` in a command line, or None."""
    token = r"((?:\$\{\{[^}]*\}\}|[^\s\"/])+)"  # a word, or a GitHub ${{ expression }}
    m = re.search(r"--shard\s+\"?" + token + "/" + token, command)
    return m.groups() if m else None


for path in sorted(ci.glob("*.y*ml")):
    load(path.name)

gitlab = load("gitlab-ci.yml")
if gitlab:
    job = gitlab.get("kaharness", {})
    script = " ".join(job.get("script", []))
    check(isinstance(job.get("parallel"), int) and job["parallel"] > 1, "gitlab-ci.yml", "kaharness: no `parallel: N`")
    check(shard_arg(script) == ("$CI_NODE_INDEX", "$CI_NODE_TOTAL"), "gitlab-ci.yml",
          "kaharness: no --shard $CI_NODE_INDEX/$CI_NODE_TOTAL")
    junit = job.get("artifacts", {}).get("reports", {}).get("junit")
    check(junit and f"--junit {junit}" in script, "gitlab-ci.yml", "the --junit file is not artifacts:reports:junit")
    check(job.get("artifacts", {}).get("when") == "always", "gitlab-ci.yml", "artifacts not kept when a shard fails")

github = load("github-actions.yml")
if github:
    job = github.get("jobs", {}).get("cases", {})
    matrix = job.get("strategy", {}).get("matrix", {})
    shards = matrix.get("shard", [])
    check(shards == list(range(1, len(shards) + 1)) and len(shards) > 1, "github-actions.yml",
          "cases: matrix.shard is not 1..N")
    check(matrix.get("total") == [len(shards)], "github-actions.yml", "cases: matrix.total is not the number of shards")
    runs = " ".join(step.get("run", "") for step in job.get("steps", []))
    check(shard_arg(runs) == ("${{ matrix.shard }}", "${{ matrix.total }}"), "github-actions.yml",
          "cases: no --shard ${{ matrix.shard }}/${{ matrix.total }}")
    uploads = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    check(any("junit.xml" in s.get("with", {}).get("path", "") and s.get("if") == "always()" for s in uploads),
          "github-actions.yml", "cases: junit.xml is not uploaded when a shard fails")
    options = job.get("container", {}).get("options", "")
    check(re.findall(r"--cap-add\s+(\S+)", options) == ["NET_ADMIN", "NET_RAW"], "github-actions.yml",
          "cases: the container must add NET_ADMIN and NET_RAW, nothing more")
    check("privileged" not in options and "seccomp" not in options, "github-actions.yml",
          "cases: the container must keep the default seccomp profile, unprivileged")

k8s = load("k8s-indexed-job.yaml")
if k8s:
    spec = k8s.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    container = (pod.get("containers") or [{}])[0]
    security = container.get("securityContext", {})
    command = " ".join(container.get("command", []) + container.get("args", []))
    check(k8s.get("kind") == "Job" and spec.get("completionMode") == "Indexed", "k8s-indexed-job.yaml",
          "not an Indexed Job")
    check(spec.get("completions") == spec.get("parallelism"), "k8s-indexed-job.yaml",
          "completions and parallelism differ")
    check("$((JOB_COMPLETION_INDEX + 1))" in command, "k8s-indexed-job.yaml",
          "--shard K must be JOB_COMPLETION_INDEX + 1 (the index counts from 0, K from 1)")
    shard = shard_arg(command)
    check(shard is not None and shard[1] == str(spec.get("completions")), "k8s-indexed-job.yaml",
          "--shard's N is not `completions`")
    check(security.get("capabilities") == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}, "k8s-indexed-job.yaml",
          "capabilities must drop ALL and add NET_ADMIN, NET_RAW")
    check(security.get("seccompProfile") == {"type": "RuntimeDefault"}, "k8s-indexed-job.yaml",
          "seccompProfile must be RuntimeDefault")
    check(security.get("privileged") is False, "k8s-indexed-job.yaml", "the container must not be privileged")

for line in problems:
    print(f"check-ci: {line}")
sys.exit(1 if problems else 0)
