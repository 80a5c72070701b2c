"""The control plane's cross-region note on an alert that names a flag change."""

from steadymail.control.service import compare_regions

SUSPECT = {
    "kind": "flag",
    "subject": "tracking.version",
    "after": "v2",
    "text": "tracking.version v1→v2, 13 min before",
}


def test_regions_without_the_change_and_without_the_symptom_point_at_it() -> None:
    values = {"R3": {"tracking.version": "v2"}, "R1": {}, "R2": {"tracking.version": "v1"}}
    text = compare_regions("R3", "service_restarted", SUSPECT, values, {"R1": [], "R2": []})
    assert text == (
        "tracking.version v1→v2, 13 min before: regions without it (R1, R2) show no "
        "service_restarted"
    )


def test_the_same_symptom_without_the_change_clears_it() -> None:
    values = {"R3": {"tracking.version": "v2"}, "R1": {"tracking.version": "v2"}, "R2": {}}
    firing = {"R2": [{"name": "service_restarted"}]}
    text = compare_regions("R3", "service_restarted", SUSPECT, values, firing)
    assert "R2 without it show service_restarted too" in text and "probably not" in text


def test_every_region_having_the_change_says_so() -> None:
    values = {"R3": {"tracking.version": "v2"}, "R1": {"tracking.version": "v2"}}
    text = compare_regions("R3", "send_stalled", SUSPECT, values, {})
    assert text.endswith("every other region has it too (R1)")
