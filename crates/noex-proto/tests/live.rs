//! Live views decided on raw records: for any sequence of results, the changes applied to
//! the previous view give the new result, in the server's order; unchanged records are in
//! no change; and results that are not lists of keyed records are typed errors.

use noex_proto::live::{LiveError, LiveKeys, Origin};
use noex_proto::{Payload, SubscriptionData};
use proptest::prelude::*;
use serde_json::{json, Value};

fn data(value: &Value) -> SubscriptionData {
    SubscriptionData::from(Payload::from_value(value).unwrap())
}

/// A result: records `{id, _version, n}` in the given order.
fn result(records: &[(u8, u8)]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|(key, version)| json!({"n": key, "id": format!("k{key}"), "_version": version}))
            .collect(),
    )
}

/// Applies changes to `previous` (records as JSON values), as a typed view would: kept
/// records are moved from the previous view, added and updated ones read from the new
/// result, removed ones taken out.
fn apply_to(previous: &[Value], keys: &mut LiveKeys, next: &Value) -> (Vec<Value>, Vec<Value>) {
    let next_data = data(next);
    let changes = keys.apply(&next_data).unwrap();
    let mut old: Vec<Option<Value>> = previous.iter().cloned().map(Some).collect();
    let mut view = Vec::new();
    for origin in &changes.records {
        let record = match origin {
            Origin::Kept { previous } => old[*previous].take().expect("kept once"),
            Origin::Updated { previous, record } => {
                assert!(old[*previous].take().is_some(), "updated once");
                serde_json::from_str(record.get()).unwrap()
            }
            Origin::Added { record } => serde_json::from_str(record.get()).unwrap(),
        };
        view.push(record);
    }
    let removed: Vec<Value> = changes
        .removed
        .iter()
        .map(|&i| old[i].take().expect("removed once"))
        .collect();
    assert!(
        old.iter().all(Option::is_none),
        "every old record accounted for"
    );
    (view, removed)
}

fn snapshot() -> impl Strategy<Value = Vec<(u8, u8)>> {
    // Distinct keys from a small range (so results share records), versions 1..4.
    prop::collection::btree_map(0u8..24, 1u8..4, 0..12)
        .prop_flat_map(|m| Just(m.into_iter().collect::<Vec<_>>()).prop_shuffle())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn changes_applied_to_the_previous_view_give_the_new_result(
        snapshots in prop::collection::vec(snapshot(), 1..12)
    ) {
        let mut keys = LiveKeys::new("id");
        let mut view: Vec<Value> = Vec::new();
        let mut last: Vec<(u8, u8)> = Vec::new();
        for snap in snapshots {
            let next = result(&snap);
            let (new_view, removed) = apply_to(&view, &mut keys, &next);
            prop_assert_eq!(&Value::Array(new_view.clone()), &next);
            // Removed: exactly the keys that left.
            let left: Vec<u8> = last.iter().filter(|(k, _)| !snap.iter().any(|(n, _)| n == k))
                .map(|(k, _)| *k).collect();
            let mut removed_keys: Vec<u64> = removed.iter().map(|r| r["n"].as_u64().unwrap()).collect();
            removed_keys.sort_unstable();
            let mut left_keys: Vec<u64> = left.iter().map(|&k| u64::from(k)).collect();
            left_keys.sort_unstable();
            prop_assert_eq!(removed_keys, left_keys);
            view = new_view;
            last = snap;
        }
    }

    #[test]
    fn an_unchanged_record_is_in_no_change(snap in snapshot()) {
        let mut keys = LiveKeys::new("id");
        let value = result(&snap);
        keys.apply(&data(&value)).unwrap();
        let same = data(&value);
        let changes = keys.apply(&same).unwrap();
        prop_assert!(changes.is_unchanged());
        prop_assert_eq!(changes.added() + changes.updated(), 0);
    }
}

#[test]
fn insert_update_delete_are_one_change_each() {
    let mut keys = LiveKeys::new("id");
    let first = data(&json!([
        {"id": "a", "_version": 1}, {"id": "b", "_version": 1}, {"id": "c", "_version": 1}
    ]));
    keys.apply(&first).unwrap();
    let next = data(&json!([
        {"id": "a", "_version": 1}, {"id": "c", "_version": 2}, {"id": "d", "_version": 1}
    ]));
    let changes = keys.apply(&next).unwrap();
    assert!(matches!(changes.records[0], Origin::Kept { previous: 0 }));
    assert!(matches!(
        changes.records[1],
        Origin::Updated { previous: 2, .. }
    ));
    assert!(matches!(changes.records[2], Origin::Added { .. }));
    assert_eq!(changes.removed, vec![1]);
    assert_eq!((changes.added(), changes.updated()), (1, 1));
}

#[test]
fn a_record_replaced_under_its_key_with_the_same_version_is_updated() {
    // The store's insert over an existing key (or a delete then an insert) gives
    // `_version` 1 again: the content tells the change.
    let mut keys = LiveKeys::new("id");
    keys.apply(&data(&json!([{"id": "c", "name": "Carol", "_version": 1}])))
        .unwrap();
    let next = data(&json!([{"id": "c", "name": "Carol again", "_version": 1}]));
    let changes = keys.apply(&next).unwrap();
    assert!(matches!(
        changes.records[0],
        Origin::Updated { previous: 0, .. }
    ));
    assert_eq!(changes.updated(), 1);
}

#[test]
fn keys_of_any_field_and_type_match_however_they_are_written() {
    let mut keys = LiveKeys::new("sku");
    keys.apply(&data(
        &json!([{"sku": "A", "_version": 1}, {"sku": 7, "_version": 1}]),
    ))
    .unwrap();
    // The same string key written with an escape is the same key (its record's text
    // changed, so it counts as updated, not as removed and added); the same number key
    // with the same record is kept.
    let text = r#"[{"sku":"\u0041","_version":1},{"_version":1,"sku":7}]"#;
    let next = SubscriptionData::from(Payload::from_json(text).unwrap());
    let changes = keys.apply(&next).unwrap();
    assert!(matches!(
        changes.records[0],
        Origin::Updated { previous: 0, .. }
    ));
    assert!(matches!(changes.records[1], Origin::Kept { previous: 1 }));
    assert!(changes.removed.is_empty());
    assert_eq!(keys.key_field(), "sku");
    assert_eq!(keys.len(), 2);
}

#[test]
fn results_that_are_not_keyed_records_are_typed_errors_and_change_nothing() {
    let mut keys = LiveKeys::new("id");
    keys.apply(&data(&json!([{"id": "a", "_version": 1}])))
        .unwrap();
    let cases: Vec<(&str, LiveError)> = vec![
        ("3", LiveError::NotAList),
        (r#"{"count":3}"#, LiveError::NotAList),
        ("null", LiveError::NotAList),
        ("[1]", LiveError::NotARecord { index: 0 }),
        (
            r#"[{"id":"a"},{"name":"x"}]"#,
            LiveError::MissingKey {
                index: 1,
                field: "id".into(),
            },
        ),
        (
            r#"[{"id":"a"},{"id":"a"}]"#,
            LiveError::DuplicateKey { index: 1 },
        ),
    ];
    for (text, expected) in cases {
        let value = SubscriptionData::from(Payload::from_json(text).unwrap());
        assert_eq!(keys.apply(&value).unwrap_err(), expected, "{text}");
    }
    // Still the last good result.
    assert_eq!(keys.len(), 1);
    let same = data(&json!([{"id": "a", "_version": 1}]));
    assert!(keys.apply(&same).unwrap().is_unchanged());
}
