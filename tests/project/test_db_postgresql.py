import datetime

import pytest

from project.db.postgresql.base import utc_tzinfo_factory


@pytest.mark.parametrize("offset", [0, datetime.timedelta(0)])
def test_utc_offsets_from_psycopg2_2_8_and_2_9_both_read_as_utc(offset):
    assert utc_tzinfo_factory(offset).utcoffset(None) == datetime.timedelta(0)


@pytest.mark.parametrize("offset", [60, datetime.timedelta(hours=1)])
def test_a_connection_not_in_utc_is_still_refused(offset):
    with pytest.raises(AssertionError, match="isn't set to UTC"):
        utc_tzinfo_factory(offset)
