"""gefreg's own lint rules (GR101-GR106) on rendered Dockerfiles, without hadolint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gefreg.catalog.entries import load_entry
from gefreg.image.build_plan import BuildPlan, prepare
from gefreg.image.render import Rendered
from gefreg.scan.lint import project_rules
from gefreg.settings import load_settings
from tests.helpers import demo_entry, make_catalog


@pytest.fixture
def plan(tmp_path: Path) -> BuildPlan:
    catalog = make_catalog(tmp_path / "catalog", demo_entry())
    entry = load_entry(catalog / "demo-service", {"debian-bookworm"})
    return prepare(entry, load_settings(str(catalog)))


def rules(plan: BuildPlan, dockerfile: str) -> list[tuple[int | None, str]]:
    """The (line, rule) of each violation in ``dockerfile``, rendered for ``plan``'s entry."""
    changed = dataclasses.replace(plan, rendered=Rendered(dockerfile, plan.rendered.labels))
    return [(line, rule) for line, rule, _ in project_rules(changed)]


def test_a_rendered_dockerfile_passes(plan: BuildPlan) -> None:
    assert project_rules(plan) == []


def test_each_rule_finds_its_violation(plan: BuildPlan) -> None:
    text = plan.dockerfile
    head, _, _ = text.partition("COPY ")
    labels = text[text.index("LABEL ") :]
    body = text[len(head) :]
    assert rules(plan, text.replace("@sha256:", ":1.0@sha256:")) == []
    assert rules(plan, "FROM debian:latest\n" + body) == [(1, "GR101"), (1, "GR102")]
    user_line = text[: text.index("USER ")].count("\n") + 1
    assert rules(plan, text.replace("USER 10001:10001", "USER root")) == [(user_line, "GR103")]
    assert rules(plan, text.replace("USER 10001:10001", "USER 0:0")) == [(user_line, "GR103")]
    no_user = text.replace("USER 10001:10001\n", "")
    assert rules(plan, no_user) == [(None, "GR103")]
    add = text.replace("COPY ", "ADD https://example.org/x /x\nCOPY ", 1)
    assert [r for _, r in rules(plan, add)] == ["GR104"]
    without = text.replace(labels, 'LABEL org.gefreg.entry="demo-service"\n')
    found = [r for _, r in rules(plan, without)]
    assert set(found) == {"GR105", "GR106"} and found.count("GR106") == 2
    # a multi-stage build: FROM an earlier stage needs no digest; the final stage needs a USER
    staged = head.replace("FROM ", "FROM scratch AS build\nFROM ") + body
    assert rules(plan, staged) == []
    assert rules(plan, "FROM scratch AS build\nUSER 1\nFROM build\n" + body) == []
    # a USER in an earlier stage does not make the final stage run as that user
    assert rules(plan, text + "FROM scratch\n") == [(None, "GR103")]


def test_labels_in_another_form_are_read_by_dockerfile_parse(plan: BuildPlan) -> None:
    text = plan.dockerfile
    unquoted = text.replace('org.gefreg.entry="demo-service"', "org.gefreg.entry=demo-service")
    assert rules(plan, unquoted) == []
