use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// Key group of a test key: a stand-in for the `keys` module's assignment.
fn kg(key: &[u8]) -> KeyGroup {
    (xxhash_rust::xxh3::xxh3_64(key) % 128) as KeyGroup
}

fn at(backend: &mut KeyedStateBackend, key: &str) {
    backend.set_current_key(key.as_bytes(), kg(key.as_bytes()));
}

#[derive(Clone)]
struct Mean;

impl AggregateFunction<f64> for Mean {
    type Acc = (f64, u64);
    type Out = f64;
    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, acc: &mut (f64, u64), value: f64) {
        acc.0 += value;
        acc.1 += 1;
    }
    fn get_result(&self, acc: &(f64, u64)) -> f64 {
        acc.0 / acc.1 as f64
    }
    fn merge(&self, acc: &mut (f64, u64), other: (f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

fn sum_state() -> ReducingState<u64> {
    ReducingState::new("sum", |a: &u64, b: &u64| a + b)
}

#[test]
fn handles_are_clone_and_send() {
    fn assert_clone_send<T: Clone + Send + 'static>() {}
    assert_clone_send::<ValueState<String>>();
    assert_clone_send::<ListState<Vec<u8>>>();
    assert_clone_send::<MapState<String, u64>>();
    assert_clone_send::<ReducingState<u64>>();
    assert_clone_send::<AggregatingState<f64, Mean>>();
    fn assert_send<T: Send>() {}
    assert_send::<KeyedStateBackend>();
    assert_send::<BatchKeyedTable<String>>();
}

#[test]
fn value_state_is_per_key() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let count = ValueState::<u64>::new("count");
    for key in ["a", "b", "a", "c", "a"] {
        at(&mut b, key);
        let n = count.modify(
            &mut b,
            || 0,
            |n| {
                *n += 1;
                *n
            },
        )?;
        assert!(n >= 1);
    }
    at(&mut b, "a");
    assert_eq!(count.value(&mut b)?, Some(3));
    at(&mut b, "b");
    assert_eq!(count.value(&mut b)?, Some(1));
    count.update(&mut b, 10)?;
    assert_eq!(count.value(&mut b)?, Some(10));
    count.clear(&mut b)?;
    assert_eq!(count.value(&mut b)?, None);
    at(&mut b, "zzz");
    assert_eq!(count.value(&mut b)?, None);
    assert_eq!(b.total_entries(), 2);
    Ok(())
}

#[test]
fn list_state() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let list = ListState::<String>::new("list");
    at(&mut b, "k");
    assert!(list.get(&mut b)?.is_empty());
    list.add(&mut b, "x".into())?;
    list.add_all(&mut b, ["y".to_owned(), "z".to_owned()])?;
    assert_eq!(list.get(&mut b)?, ["x", "y", "z"]);
    list.update(&mut b, vec!["q".into()])?;
    assert_eq!(list.get(&mut b)?, ["q"]);
    list.update(&mut b, Vec::new())?;
    assert_eq!(b.total_entries(), 0, "an empty list is no entry");
    list.add(&mut b, "r".into())?;
    list.clear(&mut b)?;
    assert!(list.get(&mut b)?.is_empty());
    Ok(())
}

#[test]
fn map_state() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let map = MapState::<String, u32>::new("map");
    at(&mut b, "k");
    assert!(map.is_empty(&mut b)?);
    map.put(&mut b, "one".into(), 1)?;
    map.put(&mut b, "two".into(), 2)?;
    map.put(&mut b, "one".into(), 11)?;
    assert_eq!(map.get(&mut b, "one")?, Some(11));
    assert!(map.contains(&mut b, "two")?);
    assert!(!map.contains(&mut b, "three")?);
    let mut entries = map.entries(&mut b)?;
    entries.sort();
    assert_eq!(entries, [("one".to_owned(), 11), ("two".to_owned(), 2)]);
    let mut keys = map.keys(&mut b)?;
    keys.sort();
    assert_eq!(keys, ["one", "two"]);
    let mut values = map.values(&mut b)?;
    values.sort();
    assert_eq!(values, [2, 11]);
    assert_eq!(map.remove(&mut b, "one")?, Some(11));
    assert_eq!(map.remove(&mut b, "one")?, None);
    at(&mut b, "other");
    assert!(map.is_empty(&mut b)?);
    at(&mut b, "k");
    assert!(!map.is_empty(&mut b)?);
    map.clear(&mut b)?;
    assert!(map.is_empty(&mut b)?);
    assert_eq!(b.total_entries(), 0);
    Ok(())
}

#[test]
fn reducing_and_aggregating_state() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let sum = sum_state();
    let mean = AggregatingState::new("mean", Mean);
    at(&mut b, "k");
    assert_eq!(sum.get(&mut b)?, None);
    assert_eq!(mean.get(&mut b)?, None);
    for v in [1, 2, 3, 4] {
        sum.add(&mut b, v)?;
        mean.add(&mut b, v as f64)?;
    }
    assert_eq!(sum.get(&mut b)?, Some(10));
    assert_eq!(mean.get(&mut b)?, Some(2.5));
    sum.clear(&mut b)?;
    mean.clear(&mut b)?;
    assert_eq!(sum.get(&mut b)?, None);
    assert_eq!(mean.get(&mut b)?, None);
    Ok(())
}

#[test]
fn namespaces_scope_state() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let count = ValueState::<u64>::new("count");
    let list = ListState::<u8>::new("list");
    for key in ["a", "b"] {
        at(&mut b, key);
        for (ns, n) in [(&b"w1"[..], 1), (b"w2", 2)] {
            b.set_current_namespace(ns);
            count.update(&mut b, n)?;
            list.add(&mut b, n as u8)?;
        }
    }
    at(&mut b, "a");
    b.set_current_namespace(b"w1");
    assert_eq!(count.value(&mut b)?, Some(1));
    b.set_current_namespace(b"w2");
    assert_eq!(count.value(&mut b)?, Some(2));
    b.set_current_namespace(b"");
    assert_eq!(count.value(&mut b)?, None);
    assert_eq!(b.current_namespace(), b"");

    let mut in_w1 = b.keys_in_namespace("count", b"w1")?;
    in_w1.sort();
    assert_eq!(
        in_w1,
        [(kg(b"a"), b"a".to_vec()), (kg(b"b"), b"b".to_vec())]
    );

    // Purge one window of one key from every state.
    at(&mut b, "a");
    b.set_current_namespace(b"w2");
    b.clear_current()?;
    assert_eq!(count.value(&mut b)?, None);
    assert!(list.get(&mut b)?.is_empty());
    assert_eq!(b.total_entries(), 6);

    // Drop a whole window for all keys.
    assert_eq!(b.clear_namespace(b"w1"), 4);
    assert_eq!(b.total_entries(), 2);
    let mut seen = Vec::new();
    b.for_each_entry("list", |key_group, key, ns| {
        seen.push((key_group, key.to_vec(), ns.to_vec()))
    })?;
    assert_eq!(seen, [(kg(b"b"), b"b".to_vec(), b"w2".to_vec())]);
    at(&mut b, "b");
    let mut in_group = Vec::new();
    b.for_each_entry_in_current_key_group("count", |key, ns| {
        in_group.push((key.to_vec(), ns.to_vec()))
    })?;
    assert_eq!(in_group, [(b"b".to_vec(), b"w2".to_vec())]);
    assert!(matches!(
        b.for_each_entry("nope", |_, _, _| {}),
        Err(StateError::UnknownState { .. })
    ));
    Ok(())
}

#[test]
fn merge_namespaces() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let list = ListState::<u32>::new("list");
    let sum = sum_state();
    let mean = AggregatingState::new("mean", Mean);
    at(&mut b, "k");
    for (ns, v) in [(&b"s1"[..], 1u32), (b"s2", 2), (b"s3", 3), (b"t", 10)] {
        b.set_current_namespace(ns);
        list.add(&mut b, v)?;
        sum.add(&mut b, u64::from(v))?;
        mean.add(&mut b, f64::from(v))?;
    }
    b.set_current_namespace(b"s3");
    list.merge_namespaces(&mut b, b"t", [&b"s1"[..], b"s2", b"t", b"missing"])?;
    sum.merge_namespaces(&mut b, b"t", [b"s1", b"s2"])?;
    mean.merge_namespaces(&mut b, b"new", vec![b"s1".to_vec(), b"s2".to_vec()])?;
    assert_eq!(
        b.current_namespace(),
        b"s3",
        "the current namespace is kept"
    );

    b.set_current_namespace(b"t");
    assert_eq!(list.get(&mut b)?, [10, 1, 2]);
    assert_eq!(sum.get(&mut b)?, Some(13));
    assert_eq!(mean.get(&mut b)?, Some(10.0));
    b.set_current_namespace(b"new");
    assert_eq!(mean.get(&mut b)?, Some(1.5));
    for ns in [&b"s1"[..], b"s2"] {
        b.set_current_namespace(ns);
        assert!(list.get(&mut b)?.is_empty());
        assert_eq!(sum.get(&mut b)?, None);
        assert_eq!(mean.get(&mut b)?, None);
    }
    Ok(())
}

#[test]
fn ttl_on_create_and_write() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let ttl = StateTtlConfig::new(Duration::from_millis(100));
    let value = ValueState::<u32>::new("v").with_ttl(ttl);
    let list = ListState::<u32>::new("l").with_ttl(ttl);
    at(&mut b, "k");
    b.set_current_time(1_000);
    value.update(&mut b, 1)?;
    list.add(&mut b, 1)?;
    b.set_current_time(1_099);
    assert_eq!(value.value(&mut b)?, Some(1), "reads do not refresh");
    b.set_current_time(1_050);
    list.add(&mut b, 2)?; // a write refreshes
    b.set_current_time(1_100);
    assert_eq!(value.value(&mut b)?, None);
    assert_eq!(
        b.total_entries(),
        1,
        "the expired value was removed when read"
    );
    assert_eq!(list.get(&mut b)?, [1, 2]);
    b.set_current_time(1_150);
    assert!(list.get(&mut b)?.is_empty());
    // Writing after expiry starts afresh.
    list.add(&mut b, 3)?;
    assert_eq!(list.get(&mut b)?, [3]);
    Ok(())
}

#[test]
fn ttl_on_read_and_write() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let ttl =
        StateTtlConfig::new(Duration::from_millis(100)).update_type(TtlUpdateType::OnReadAndWrite);
    let value = ValueState::<u32>::new("v").with_ttl(ttl);
    at(&mut b, "k");
    value.update(&mut b, 7)?;
    for now in [90, 180, 270] {
        b.set_current_time(now);
        assert_eq!(value.value(&mut b)?, Some(7));
    }
    b.set_current_time(370);
    assert_eq!(value.value(&mut b)?, None);
    Ok(())
}

#[test]
fn ttl_map_user_keys_expire_separately() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let map = MapState::<u8, u8>::new("m").with_ttl(StateTtlConfig::new(Duration::from_millis(10)));
    at(&mut b, "k");
    map.put(&mut b, 1, 1)?;
    b.set_current_time(5);
    map.put(&mut b, 2, 2)?;
    b.set_current_time(10);
    assert_eq!(map.get(&mut b, &1)?, None);
    assert_eq!(map.get(&mut b, &2)?, Some(2));
    assert_eq!(map.entries(&mut b)?, [(2, 2)]);
    b.set_current_time(15);
    assert!(map.is_empty(&mut b)?);
    assert_eq!(b.total_entries(), 0);
    Ok(())
}

#[test]
fn cleanup_and_snapshot_drop_expired_entries() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let ttl = StateTtlConfig::new(Duration::from_millis(100));
    let value = ValueState::<u32>::new("v").with_ttl(ttl);
    let map = MapState::<u8, u8>::new("m").with_ttl(ttl);
    let plain = ValueState::<u32>::new("plain");
    for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        b.set_current_time(i as i64 * 100);
        at(&mut b, key);
        value.update(&mut b, 1)?;
        map.put(&mut b, 0, 0)?;
        plain.update(&mut b, 1)?;
    }
    // At 305 everything written before 205 has expired; the map of "c" keeps user key 1.
    b.set_current_time(250);
    at(&mut b, "c");
    map.put(&mut b, 1, 1)?;
    b.set_current_time(305);
    assert_eq!(b.total_entries(), 12);
    let groups: Vec<_> = ["a", "b", "c", "d"].map(|k| kg(k.as_bytes())).into();
    assert!(
        !groups[1..].contains(&groups[0]),
        "key \"a\" has a key group of its own"
    );
    let snapshot = b.snapshot_key_group(kg(b"a"))?;
    assert_eq!(
        b.total_entries(),
        10,
        "snapshot dropped the expired entries of key \"a\""
    );
    let mut fresh = KeyedStateBackend::new(0, 127);
    fresh.restore_key_group(kg(b"a"), &snapshot)?;
    assert_eq!(
        fresh.total_entries(),
        1,
        "only the state without TTL was written"
    );

    // Values of "b" and "c", the map of "b"; the map of "c" only loses user key 0.
    assert_eq!(b.cleanup_expired(), 3);
    assert_eq!(b.total_entries(), 7);
    at(&mut b, "c");
    assert_eq!(map.entries(&mut b)?, [(1, 1)]);
    Ok(())
}

#[test]
fn ttl_timestamps_survive_restore() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let value =
        ValueState::<u32>::new("v").with_ttl(StateTtlConfig::new(Duration::from_millis(100)));
    at(&mut b, "k");
    b.set_current_time(1_000);
    value.update(&mut b, 1)?;
    let snapshot = b.snapshot_key_group(kg(b"k"))?;
    let mut restored = KeyedStateBackend::new(0, 127);
    restored.restore_key_group(kg(b"k"), &snapshot)?;
    at(&mut restored, "k");
    restored.set_current_time(1_099);
    assert_eq!(value.value(&mut restored)?, Some(1));
    restored.set_current_time(1_100);
    assert_eq!(value.value(&mut restored)?, None);
    Ok(())
}

#[test]
fn type_mismatch_names_state_and_both_types() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    at(&mut b, "k");
    ValueState::<u64>::new("x").update(&mut b, 1)?;
    let err = ValueState::<String>::new("x")
        .value(&mut b)
        .expect_err("same name, another type");
    let message = err.to_string();
    assert!(matches!(err, StateError::TypeMismatch { .. }));
    assert!(message.contains("\"x\""), "{message}");
    assert!(message.contains("ValueState<u64>"), "{message}");
    assert!(
        message.contains("ValueState<alloc::string::String>"),
        "{message}"
    );

    // Same stored type, other kind.
    ListState::<u64>::new("l").add(&mut b, 1)?;
    let err = ValueState::<Vec<u64>>::new("l")
        .value(&mut b)
        .expect_err("other kind");
    assert!(err.to_string().contains("ListState<u64>"), "{err}");
    Ok(())
}

#[test]
fn key_errors() {
    let mut b = KeyedStateBackend::new(10, 20);
    let value = ValueState::<u8>::new("v");
    assert!(matches!(
        value.value(&mut b),
        Err(StateError::NoCurrentKey { .. })
    ));
    b.set_current_key(b"k", 21);
    assert!(matches!(
        value.update(&mut b, 1),
        Err(StateError::KeyGroupNotOwned {
            key_group: 21,
            start: 10,
            end: 20
        })
    ));
    assert!(b.snapshot_key_group(9).is_err());
    assert!(b.restore_key_group(10, b"garbage").is_err());
}

#[test]
fn handle_resolves_per_backend() -> Result<(), StateError> {
    let a_state = ValueState::<u8>::new("a");
    let b_state = ValueState::<String>::new("b");
    let mut first = KeyedStateBackend::new(0, 127);
    let mut second = KeyedStateBackend::new(0, 127);
    at(&mut first, "k");
    at(&mut second, "k");
    a_state.update(&mut first, 1)?;
    b_state.update(&mut first, "first".into())?;
    // In the second backend the slots are registered in the other order.
    b_state.update(&mut second, "second".into())?;
    a_state.update(&mut second, 2)?;
    let a_clone = a_state.clone();
    assert_eq!(a_state.value(&mut first)?, Some(1));
    assert_eq!(a_clone.value(&mut second)?, Some(2));
    assert_eq!(b_state.value(&mut first)?.as_deref(), Some("first"));
    assert_eq!(b_state.value(&mut second)?.as_deref(), Some("second"));
    Ok(())
}

/// Writes one entry of every state kind under `key`, in the empty namespace and in `w`.
fn fill(b: &mut KeyedStateBackend, key: &str, n: u64) -> Result<(), StateError> {
    at(b, key);
    for ns in [&b""[..], b"w"] {
        b.set_current_namespace(ns);
        ValueState::<u64>::new("value").update(b, n)?;
        ListState::<u64>::new("list").add_all(b, [n, n + 1])?;
        MapState::<u64, String>::new("map").put(b, n, key.to_owned())?;
        sum_state().add(b, n)?;
        AggregatingState::new("mean", Mean).add(b, n as f64)?;
    }
    b.set_current_namespace(b"");
    Ok(())
}

fn assert_filled(b: &mut KeyedStateBackend, key: &str, n: u64) -> Result<(), StateError> {
    at(b, key);
    for ns in [&b""[..], b"w"] {
        b.set_current_namespace(ns);
        assert_eq!(ValueState::<u64>::new("value").value(b)?, Some(n));
        assert_eq!(ListState::<u64>::new("list").get(b)?, [n, n + 1]);
        assert_eq!(
            MapState::<u64, String>::new("map").entries(b)?,
            [(n, key.to_owned())]
        );
        assert_eq!(sum_state().get(b)?, Some(n));
        assert_eq!(AggregatingState::new("mean", Mean).get(b)?, Some(n as f64));
    }
    b.set_current_namespace(b"");
    Ok(())
}

fn test_keys() -> Vec<String> {
    (0..300).map(|i| format!("key-{i}")).collect()
}

#[test]
fn snapshot_restore_into_fresh_backend() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let keys = test_keys();
    for (n, key) in keys.iter().enumerate() {
        fill(&mut b, key, n as u64)?;
    }
    let snapshots: Vec<_> = (0..128)
        .map(|g| b.snapshot_key_group(g))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        snapshots,
        (0..128)
            .map(|g| b.snapshot_key_group(g))
            .collect::<Result<Vec<_>, _>>()?,
        "snapshots are deterministic"
    );

    let mut restored = KeyedStateBackend::new(0, 127);
    for (g, bytes) in (0..).zip(&snapshots) {
        restored.restore_key_group(g, bytes)?;
    }
    assert_eq!(restored.total_entries(), b.total_entries());
    for (n, key) in keys.iter().enumerate() {
        assert_filled(&mut restored, key, n as u64)?;
    }
    Ok(())
}

#[test]
fn restore_at_another_split_of_key_groups() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    let keys = test_keys();
    for (n, key) in keys.iter().enumerate() {
        fill(&mut b, key, n as u64)?;
    }
    let mut low = KeyedStateBackend::new(0, 63);
    let mut high = KeyedStateBackend::new(64, 127);
    for g in 0..128 {
        let bytes = b.snapshot_key_group(g)?;
        if g < 64 {
            low.restore_key_group(g, &bytes)?;
            assert!(high.restore_key_group(g, &bytes).is_err());
        } else {
            high.restore_key_group(g, &bytes)?;
        }
    }
    assert_eq!(
        low.total_entries() + high.total_entries(),
        b.total_entries()
    );
    let value = ValueState::<u64>::new("value");
    value.register(&mut low)?;
    value.register(&mut high)?;
    let mut low_keys = Vec::new();
    low.for_each_entry("value", |g, key, _| low_keys.push((g, key.to_vec())))?;
    let mut high_keys = Vec::new();
    high.for_each_entry("value", |g, key, _| high_keys.push((g, key.to_vec())))?;
    assert!(low_keys.iter().all(|(g, _)| *g < 64));
    assert!(high_keys.iter().all(|(g, _)| *g >= 64));
    assert_eq!(low_keys.len() + high_keys.len(), 2 * keys.len());
    for (n, key) in keys.iter().enumerate() {
        let owner = if kg(key.as_bytes()) < 64 {
            &mut low
        } else {
            &mut high
        };
        assert_filled(owner, key, n as u64)?;
    }
    Ok(())
}

#[test]
fn restored_state_is_decoded_lazily_and_kept_until_registered() -> Result<(), StateError> {
    let mut b = KeyedStateBackend::new(0, 127);
    fill(&mut b, "k", 5)?;
    let g = kg(b"k");
    let snapshot = b.snapshot_key_group(g)?;

    let mut restored = KeyedStateBackend::new(0, 127);
    restored.restore_key_group(g, &snapshot)?;
    assert_eq!(restored.total_entries(), 10);
    assert_eq!(restored.state_names().count(), 0);
    assert!(matches!(
        restored.for_each_entry("value", |_, _, _| {}),
        Err(StateError::NotRegistered { .. })
    ));
    // A checkpoint before any record touched the state still holds it.
    let again = restored.snapshot_key_group(g)?;
    let mut twice = KeyedStateBackend::new(g, g);
    twice.restore_key_group(g, &again)?;
    assert_filled(&mut twice, "k", 5)?;

    // Registering the wrong type fails and keeps the bytes.
    at(&mut restored, "k");
    assert!(
        ValueState::<String>::new("value")
            .value(&mut restored)
            .is_err()
    );
    assert_eq!(restored.total_entries(), 10);
    assert_filled(&mut restored, "k", 5)?;
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    SetKey(u8, u8),
    ValueUpdate(u32),
    ValueClear,
    ListAdd(u32),
    ListClear,
    MapPut(u8, u32),
    MapRemove(u8),
    MapClear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..12u8, 0..3u8).prop_map(|(k, ns)| Op::SetKey(k, ns)),
        any::<u32>().prop_map(Op::ValueUpdate),
        Just(Op::ValueClear),
        any::<u32>().prop_map(Op::ListAdd),
        Just(Op::ListClear),
        (0..4u8, any::<u32>()).prop_map(|(k, v)| Op::MapPut(k, v)),
        (0..4u8).prop_map(Op::MapRemove),
        Just(Op::MapClear),
    ]
}

#[derive(Debug, Default, Clone, PartialEq)]
struct ModelEntry {
    value: Option<u32>,
    list: Vec<u32>,
    map: HashMap<u8, u32>,
}

struct Handles {
    value: ValueState<u32>,
    list: ListState<u32>,
    map: MapState<u8, u32>,
}

fn encode_key(key: u8) -> Vec<u8> {
    vec![b'k', key]
}

fn position(b: &mut KeyedStateBackend, key: u8, ns: u8) {
    let encoded = encode_key(key);
    b.set_current_key(&encoded, kg(&encoded));
    b.set_current_namespace(if ns == 0 {
        &[]
    } else {
        std::slice::from_ref(&ns)
    });
}

fn read(b: &mut KeyedStateBackend, h: &Handles) -> Result<ModelEntry, StateError> {
    Ok(ModelEntry {
        value: h.value.value(b)?,
        list: h.list.get(b)?,
        map: h.map.entries(b)?.into_iter().collect(),
    })
}

proptest! {
    #[test]
    fn backend_agrees_with_hash_map_model(ops in proptest::collection::vec(op(), 1..200)) {
        let h = Handles {
            value: ValueState::new("value"),
            list: ListState::new("list"),
            map: MapState::new("map"),
        };
        let mut b = KeyedStateBackend::new(0, 127);
        let mut model: HashMap<(u8, u8), ModelEntry> = HashMap::new();
        let mut current = (0u8, 0u8);
        position(&mut b, 0, 0);
        for op in ops {
            let entry = model.entry(current).or_default();
            match op {
                Op::SetKey(k, ns) => {
                    current = (k, ns);
                    position(&mut b, k, ns);
                }
                Op::ValueUpdate(v) => {
                    h.value.update(&mut b, v)?;
                    entry.value = Some(v);
                }
                Op::ValueClear => {
                    h.value.clear(&mut b)?;
                    entry.value = None;
                }
                Op::ListAdd(v) => {
                    h.list.add(&mut b, v)?;
                    entry.list.push(v);
                }
                Op::ListClear => {
                    h.list.clear(&mut b)?;
                    entry.list.clear();
                }
                Op::MapPut(k, v) => {
                    h.map.put(&mut b, k, v)?;
                    entry.map.insert(k, v);
                }
                Op::MapRemove(k) => {
                    prop_assert_eq!(h.map.remove(&mut b, &k)?, entry.map.remove(&k));
                }
                Op::MapClear => {
                    h.map.clear(&mut b)?;
                    entry.map.clear();
                }
            }
            let expected = model.get(&current).cloned().unwrap_or_default();
            prop_assert_eq!(read(&mut b, &h)?, expected);
        }

        // Snapshot, restore into two backends splitting the key groups, and compare everything.
        let mut low = KeyedStateBackend::new(0, 63);
        let mut high = KeyedStateBackend::new(64, 127);
        for g in 0..128 {
            let bytes = b.snapshot_key_group(g)?;
            if g < 64 { low.restore_key_group(g, &bytes)? } else { high.restore_key_group(g, &bytes)? }
        }
        for key in 0..12u8 {
            for ns in 0..3u8 {
                let expected = model.get(&(key, ns)).cloned().unwrap_or_default();
                for backend in [&mut b, &mut low, &mut high] {
                    let owned = backend.key_group_range().contains(&kg(&encode_key(key)));
                    if owned {
                        position(backend, key, ns);
                        prop_assert_eq!(read(backend, &h)?, expected.clone());
                    }
                }
            }
        }
    }
}

fn apply(b: &mut KeyedStateBackend, h: &Handles, op: &Op) -> Result<(), StateError> {
    match *op {
        Op::SetKey(k, ns) => position(b, k, ns),
        Op::ValueUpdate(v) => h.value.update(b, v)?,
        Op::ValueClear => h.value.clear(b)?,
        Op::ListAdd(v) => h.list.add(b, v)?,
        Op::ListClear => h.list.clear(b)?,
        Op::MapPut(k, v) => h.map.put(b, k, v)?,
        Op::MapRemove(k) => {
            h.map.remove(b, &k)?;
        }
        Op::MapClear => h.map.clear(b)?,
    }
    Ok(())
}

proptest! {
    /// A capture serialized later, on another thread, after the backend changed further, gives
    /// the bytes a snapshot taken at the capture would have given.
    #[test]
    fn a_capture_serializes_the_state_as_it_was(
        before in proptest::collection::vec(op(), 1..120),
        after in proptest::collection::vec(op(), 1..120),
    ) {
        let h = Handles {
            value: ValueState::new("value"),
            list: ListState::new("list"),
            map: MapState::new("map"),
        };
        let mut b = KeyedStateBackend::new(0, 127);
        position(&mut b, 0, 0);
        for op in &before {
            apply(&mut b, &h, op)?;
        }
        let reference: Vec<Vec<u8>> =
            (0..128).map(|g| b.snapshot_key_group(g)).collect::<Result<_, _>>()?;
        let capture = b.capture();
        for op in &after {
            apply(&mut b, &h, op)?;
        }
        let written = std::thread::spawn(move || {
            (0..128)
                .map(|g| capture.snapshot_key_group(g))
                .collect::<Result<Vec<_>, _>>()
        })
        .join()
        .expect("the writer thread does not panic")?;
        prop_assert_eq!(written, reference);
    }
}
