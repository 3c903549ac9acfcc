import pytest
import sqlalchemy as sa

from core.errors import ValidationFailed
from supporters.models import Supporter, SupporterKind, SupporterStatus, Tag, supporter_tags
from supporters.segments import compile_filter


@pytest.fixture
def base(db):
    press = Tag(name="press")
    db.session.add(press)
    people = [
        Supporter(email=f"s{i}@example.org", email_normalized=f"s{i}@example.org", kind=kind, status=status,
                  language=lang)
        for i, (kind, status, lang) in enumerate([
            (SupporterKind.FAN, SupporterStatus.ACTIVE, "de"),
            (SupporterKind.SUPPLIER, SupporterStatus.ACTIVE, "en"),
            (SupporterKind.FAN, SupporterStatus.PENDING, "en"),
        ])
    ]
    db.session.add_all(people)
    db.session.flush()
    db.session.execute(supporter_tags.insert(), [{"tag_id": press.id, "supporter_id": people[0].id},
                                                 {"tag_id": press.id, "supporter_id": people[1].id}])
    db.session.commit()
    return people


def matches(db, definition):
    return sorted(db.session.scalars(sa.select(Supporter.email).where(compile_filter(definition))))


def test_all_any_not_over_fields_and_tags(db, base):
    assert matches(db, {"all": [{"field": "status", "op": "eq", "value": "active"},
                                {"field": "tags", "op": "has", "value": "press"}]}) == ["s0@example.org", "s1@example.org"]
    assert matches(db, {"any": [{"field": "kind", "op": "eq", "value": "supplier"},
                                {"field": "language", "op": "eq", "value": "de"}]}) == ["s0@example.org", "s1@example.org"]
    assert matches(db, {"not": {"field": "tags", "op": "has_any", "value": ["press"]}}) == ["s2@example.org"]
    assert matches(db, {"field": "joined", "op": "after", "value": "2000-01-01"}) == [p.email for p in base]


@pytest.mark.parametrize("definition, path, fragment", [
    ({"field": "colour", "op": "eq", "value": "x"}, "filter.field", "unknown field"),
    ({"all": [{"field": "kind", "op": "like", "value": "fan"}]}, "filter.all[0].op", "unknown operator"),
    ({"field": "kind", "op": "eq", "value": "alien"}, "filter.value", "invalid value"),
    ({"field": "tags", "op": "has", "value": "nope"}, "filter.value", "unknown tag"),
    ({"any": []}, "filter.any", "non-empty list"),
    ({"field": "joined", "op": "before", "value": "yesterday"}, "filter.value", "ISO 8601"),
    ({"field": "engagement", "op": "gt", "value": "1; DROP TABLE supporters"}, "filter.value", "number"),
    ({"field": "kind", "op": "eq", "value": "fan", "extra": 1}, "filter.extra", "unknown key"),
    ("kind = fan", "filter", "must be an object"),
])
def test_invalid_filters_name_the_path_of_the_offending_node(db, base, definition, path, fragment):
    with pytest.raises(ValidationFailed) as info:
        compile_filter(definition)
    assert list(info.value.errors) == [path]
    assert fragment in info.value.errors[path][0]


def test_values_are_bound_parameters_not_sql(db, base):
    evil = "x' OR '1'='1"
    assert matches(db, {"field": "country", "op": "eq", "value": evil}) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Supporter)) == 3
