"""dlbook.history: the timeline's data table is well formed."""
from dlbook.history import MILESTONES


def test_one_milestone_a_year_in_order():
    years = [year for year, _ in MILESTONES]
    assert years == sorted(set(years)), "one entry a year, in order of year"
    assert years[0] == 1943 and years[-1] == 2024


def test_entries_are_short_sentences():
    for year, text in MILESTONES:
        assert isinstance(year, int) and isinstance(text, str) and text.strip(), year
