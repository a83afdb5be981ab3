from __future__ import annotations

import pytest

from streams.pages import PageRegistry, PageRegistryError


def test_yaml_and_csv(tmp_path):
    yaml_file = tmp_path / "pages.yaml"
    yaml_file.write_text(
        "pages:\n  - page_id: 'vk:-1'\n    name: Школа\n    municipality: Вербовский МО\n"
        "    category: школа\n    answer_deadline_hours: 4\n    deadline_mode: plain\n",
        encoding="utf-8",
    )
    page = PageRegistry.load(yaml_file).get("vk:-1")
    assert (page.name, page.answer_deadline_hours, page.deadline_mode) == ("Школа", 4.0, "plain")
    csv_file = tmp_path / "pages.csv"
    csv_file.write_text("page_id,name,municipality,category,answer_deadline_hours\n"
                        "vk:-2,ДК,Ольшанское СП,культура,\n", encoding="utf-8")
    registry = PageRegistry.load(csv_file)
    assert registry.get("vk:-2").answer_deadline_hours is None and "vk:-2" in registry


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("pages:\n  - page_id: '-1'\n", "must be '<platform>:<id>'"),
        ("pages:\n  - page_id: 'vk:-1'\n    answer_deadline_hours: soon\n", "must be a number"),
        ("pages:\n  - page_id: 'vk:-1'\n    deadline_mode: weekly\n", "deadline_mode"),
        ("pages:\n  - page_id: 'vk:-1'\n  - page_id: 'vk:-1'\n", "listed twice"),
        ("pages: 5\n", "expected a list"),
    ],
)
def test_bad_registry_says_what_to_fix(tmp_path, body, says):
    path = tmp_path / "pages.yaml"
    path.write_text(body)
    with pytest.raises(PageRegistryError, match=says):
        PageRegistry.load(path)


def test_missing_file_names_the_setting(tmp_path):
    with pytest.raises(PageRegistryError, match="DOZOR_PAGES_FILE"):
        PageRegistry.load(tmp_path / "nope.yaml")


def test_unknown_page_is_still_usable():
    page = PageRegistry().get("vk:-99")
    assert page.platform == "vk" and page.answer_deadline_hours is None
