//! A key with entries of several fingerprint lengths (after merging
//! maplets that grew differently): delete and remove treat it as one key.

use mappy_core::{Counter, Maplet, SetUnion};

/// `a` holds `key` before growth, `b` after: merged, the key has a short
/// entry and a long one.
fn split<O: mappy_core::Operator + Clone>(op: O, first: O::Value, second: O::Value) -> Maplet<O> {
    let mut a = Maplet::new(8, 1e-9, op.clone()).unwrap();
    let mut b = Maplet::new(8, 1e-9, op).unwrap();
    a.insert("key-11", first).unwrap();
    for i in 0..64 {
        b.insert(&format!("other-{i}"), second.clone()).unwrap();
    }
    b.insert("key-11", second).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a.len(), 66, "the key has two entries");
    a
}

#[test]
fn deleting_a_counters_whole_count_removes_every_entry_and_none_turns_negative() {
    let mut m = split(Counter, 2, 3);
    assert_eq!(m.query("key-11"), Some(5));
    let before = m.len();
    assert!(m.delete("key-11", &5).unwrap());
    assert_eq!(m.query("key-11"), None);
    assert!(m.len() < before);
    assert!(
        m.entries().all(|e| e.value >= 0),
        "no entry turned negative"
    );
    assert!(!m.holds_signed_values());
}

#[test]
fn deleting_part_of_a_count_takes_the_longest_entry_first() {
    let mut m = split(Counter, 2, 3);
    assert!(m.delete("key-11", &4).unwrap());
    assert_eq!(m.query("key-11"), Some(1));
    assert!(m.entries().all(|e| e.value > 0));
}

#[test]
fn removing_a_key_removes_all_its_entries() {
    let mut m = split(SetUnion::new(), [1u32].into(), [2u32].into());
    assert!(m.remove("key-11").unwrap());
    assert_eq!(m.query("key-11"), None);
    assert!(!m.remove("key-11").unwrap());
}

#[test]
fn a_signed_counts_delete_past_its_entries_leaves_the_rest_negative() {
    let mut m = Maplet::new(100, 1e-9, Counter).unwrap();
    m.insert("k", 1).unwrap();
    assert!(m.delete("k", &3).unwrap());
    assert_eq!(m.query("k"), Some(-2));
    let mut m = split(Counter, 2, 3);
    assert!(m.delete("key-11", &7).unwrap());
    assert_eq!(m.query("key-11"), Some(-2));
}
