//! Tests of the slot table, and the helpers its children's tests share.

use super::*;

/// Steps `x` as a linear congruential generator and returns it: the
/// tests' reproducible stream of hashes and bits.
pub(super) fn next(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x
}

/// Inserts an entry of home slot `q` and field `f` with value `v` if
/// none matches, as a maplet does; whether it was inserted.
pub(super) fn insert_new(t: &mut Table, q: u64, f: u64, v: i64) -> bool {
    match t.probe(q, f, f) {
        Probe::Missing { pos, run_end } => {
            t.insert_at(q, f, v, pos, run_end).unwrap();
            true
        }
        Probe::Found { .. } => false,
    }
}

/// Asserts that each `(q, f, v)` of `stored` is found with its value.
pub(super) fn assert_stored(t: &Table, stored: &[(u64, u64, i64)]) {
    for &(q, f, v) in stored {
        let s = t.best_match(q, f).expect("a stored entry is found");
        let (fbits, vbits, signed) = (t.fbits, t.vbits, t.signed);
        assert_eq!(t.value(s), v, "fbits {fbits} vbits {vbits} signed {signed}");
    }
}

#[test]
fn field_matching_respects_prefix_length() {
    // fbits 8: field 1011_0100 has L = 5 (prefix 10110).
    let f = 0b1011_0100;
    assert_eq!(field_len(f, 8), 5);
    assert!(field_matches(f, 0b1011_0111));
    assert!(field_matches(f, 0b1011_0001));
    assert!(!field_matches(f, 0b1011_1001));
    assert!(field_matches(0b1000_0000, 0b0110_1011)); // L = 0 matches all
}

/// A value fits a table exactly when it needs no more bits than the
/// table's values have (and is not negative in an unsigned table), for
/// every width, both signs, and values at and around each power of two.
#[test]
fn fits_agrees_with_value_width() {
    let mut values = vec![0i64, 1, -1, i64::MAX, i64::MIN];
    for k in 0..63 {
        for d in [-1, 0, 1] {
            values.push((1i64 << k) + d);
            values.push(-(1i64 << k) + d);
        }
    }
    for signed in [false, true] {
        for vbits in 1..=64 {
            let t = Table::new(64, 8, vbits, signed);
            for &v in &values {
                let want = (signed || v >= 0) && value_width(v, signed) <= vbits;
                assert_eq!(t.fits(v), want, "{v} in {vbits} bits, signed {signed}");
            }
        }
    }
}

#[test]
fn value_widths() {
    assert_eq!(value_width(0, false), 1);
    assert_eq!(value_width(255, false), 8);
    assert_eq!(value_width(255, true), 9);
    assert_eq!(value_width(-1, true), 1);
    assert_eq!(value_width(-128, true), 8);
    assert_eq!(value_width(i64::MIN, true), 64);
}

mod wide_slot_tests {
    use super::*;

    /// Slots wider than a word (a long fingerprint beside a large value)
    /// shift across the boundary between pairs of blocks like narrow ones.
    #[test]
    fn slots_wider_than_a_word_keep_the_invariants() {
        for (fbits, vbits) in [(10u32, 54u32), (10, 55), (10, 60), (21, 45), (40, 64)] {
            let mut t = Table::new(440, fbits, vbits, false);
            let mut x = 12345u64;
            let mut stored = Vec::new();
            for i in 0..418i64 {
                next(&mut x);
                let (q, f) = t.locate(x);
                if insert_new(&mut t, q, f, i) {
                    stored.push((q, f, i));
                }
                t.check_invariants();
            }
            assert_stored(&t, &stored);
        }
    }
}

mod byte_slot_tests {
    use super::*;

    /// Slots of whole bytes move as bytes: long shifts across pairs of
    /// blocks keep the invariants and every value, as with the neighbouring
    /// widths that move as bits.
    #[test]
    fn byte_slots_shift_like_any_others() {
        for (fbits, vbits) in [
            (8u32, 8u32),
            (9, 7),
            (8, 9),
            (7, 8),
            (5, 3),
            (13, 11),
            (20, 20),
        ] {
            let mut t = Table::new(600, fbits, vbits, false);
            let mut x = 7u64;
            let mut stored = Vec::new();
            for i in 0..560i64 {
                next(&mut x);
                // Half of the keys crowd onto three home slots, so that
                // inserts before them shift long clusters across pairs.
                let (q, f) = t.locate(x);
                let q = if i % 2 == 0 {
                    [3, 130, 260][i as usize % 3]
                } else {
                    q
                };
                let v = i % (1 << vbits.min(8));
                if insert_new(&mut t, q, f, v) {
                    stored.push((q, f, v));
                }
                t.check_invariants();
            }
            assert!(stored.len() > 300, "{} entries", stored.len());
            assert_stored(&t, &stored);
        }
    }
}

mod widen_tests {
    use super::*;

    /// A table whose first half is empty, as each k-mer counting thread's
    /// but the first, keeps none of that half in memory as its values
    /// widen (asked of the kernel by `mincore`): the words its pairs move
    /// out of go back to the system.
    #[cfg(target_os = "linux")]
    #[test]
    fn widening_gives_back_the_words_pairs_move_out_of() {
        let canonical = 1 << 18;
        let mut t = Table::new(canonical, 10, 1, false);
        let mut x = 5u64;
        let mut stored = Vec::new();
        for _ in 0..20_000 {
            next(&mut x);
            let (q, f) = t.locate(x);
            let q = canonical / 2 + q / 2;
            if insert_new(&mut t, q, f, 1) {
                stored.push((q, f, 1));
            }
        }
        for vbits in [2, 5, 9, 17] {
            t.widen_values(vbits, false).unwrap();
        }
        assert_stored(&t, &stored);
        // What the kernel counts in memory of the table's own mapping (a
        // page only read, as the empty half's headers are, is not).
        let base = format!("{:x}-", t.words.as_ptr() as usize);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let rss_kib: usize = smaps
            .lines()
            .skip_while(|l| !l.starts_with(&base))
            .find_map(|l| l.strip_prefix("Rss:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("the table's mapping");
        let half_kib = t.words.len() * 8 / 2 / 1024;
        assert!(
            rss_kib <= half_kib + 16,
            "{rss_kib} KiB in memory, the used half {half_kib} KiB"
        );
    }

    /// Widening values in place leaves the same words as building the
    /// widened table anew, across word and pair boundaries and into signed
    /// values, and every entry answers as before.
    #[test]
    fn widening_in_place_matches_a_rebuilt_table() {
        let steps: [&[(u32, bool)]; 4] = [
            &[(2, false), (3, false), (7, false), (13, false), (64, false)],
            &[(1, false), (2, true), (9, true), (40, true)],
            &[(5, true), (6, true), (33, true)],
            &[(8, false), (8, true)],
        ];
        for (fbits, chain) in [
            (9u32, steps[0]),
            (12, steps[1]),
            (17, steps[2]),
            (8, steps[3]),
        ] {
            let (vbits0, signed0) = chain[0];
            let mut t = Table::new(700, fbits, vbits0, signed0);
            let mut x = 99u64;
            let mut stored = Vec::new();
            for i in 0..660 {
                next(&mut x);
                // Two thirds of the keys crowd onto home slot 5: their run
                // passes whole pairs that hold no runend.
                let (q, f) = t.locate(x);
                let q = if i % 3 != 0 { 5 } else { q };
                let v = if signed0 {
                    ((x >> 58) & 3) as i64 - 2
                } else {
                    ((x >> 58) & mask(vbits0.min(2))) as i64
                };
                if insert_new(&mut t, q, f, v) {
                    stored.push((q, f, v));
                }
            }
            for &(vbits, signed) in &chain[1..] {
                let rebuilt = t.reformat(fbits, vbits, signed).unwrap();
                t.widen_values(vbits, signed).unwrap();
                assert_eq!(
                    &t.words[..],
                    &rebuilt.words[..],
                    "fbits {fbits} vbits {vbits}"
                );
                assert_eq!(t.heap_bytes(), rebuilt.heap_bytes());
                t.check_invariants();
                assert_stored(&t, &stored);
            }
        }
    }
}
